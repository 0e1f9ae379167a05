"""Autoregressive generation over any runner that can prefill and decode (batch of one).

A runner is anything with `prefill_last_logits(ids (1, T)) -> (1, V)` and
`decode(ids (1, 1)) -> (1, V)`: the in-process cluster, or the networked one. Sampling is
greedy at temperature 0, otherwise temperature / top-k / top-p with a seeded generator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
from torch import Tensor


class StepRunner(Protocol):
    def prefill_last_logits(self, input_ids: Tensor) -> Tensor: ...

    def decode(self, token_ids: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 1.0
    seed: int | None = None
    stop_ids: frozenset[int] = field(default_factory=frozenset)


@dataclass
class Generation:
    tokens: list[int]
    finish_reason: Literal["stop", "length"]
    prefill_ms: float
    decode_ms: list[float]


def pick_token(logits: Tensor, params: SamplingParams, gen: torch.Generator | None) -> int:
    """Choose the next token from logits (V,)."""
    if params.temperature <= 0:
        return int(torch.argmax(logits))
    scores = logits.float() / params.temperature
    if params.top_k > 0:
        kth = torch.topk(scores, min(params.top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        cum = torch.softmax(sorted_scores, dim=-1).cumsum(-1)
        drop = cum - torch.softmax(sorted_scores, dim=-1) > params.top_p  # keep the first over p
        scores[order[drop]] = float("-inf")
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def generate(
    runner: StepRunner,
    prompt_ids: list[int],
    params: SamplingParams,
    on_token: Callable[[int], None] | None = None,
) -> Generation:
    """Generate up to `params.max_new_tokens` tokens after `prompt_ids`."""
    if not prompt_ids:
        raise ValueError("the prompt is empty: generation needs at least one token")
    gen = None
    if params.seed is not None:
        gen = torch.Generator().manual_seed(params.seed)
    t0 = time.perf_counter()
    logits = runner.prefill_last_logits(torch.tensor([prompt_ids]))[0]
    prefill_ms = (time.perf_counter() - t0) * 1e3
    tokens: list[int] = []
    decode_ms: list[float] = []
    while True:
        token = pick_token(logits, params, gen)
        tokens.append(token)
        if on_token is not None:
            on_token(token)
        if token in params.stop_ids:
            return Generation(tokens, "stop", prefill_ms, decode_ms)
        if len(tokens) >= params.max_new_tokens:
            return Generation(tokens, "length", prefill_ms, decode_ms)
        t0 = time.perf_counter()
        logits = runner.decode(torch.tensor([[token]]))[0]
        decode_ms.append((time.perf_counter() - t0) * 1e3)


def chat(
    runner: StepRunner,
    tokenizer: object,
    messages: list[dict[str, str]],
    params: SamplingParams,
) -> tuple[str, Generation]:
    """Answer a chat with a `transformers` tokenizer's chat template; returns (text, stats).

    The tokenizer's end-of-sequence token is added to the stop ids.
    """
    text = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        messages, tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:
        params = SamplingParams(**{**params.__dict__, "stop_ids": params.stop_ids | {eos}})
    result = generate(runner, list(ids), params)
    out = tokenizer.decode(result.tokens, skip_special_tokens=True)  # type: ignore[attr-defined]
    return out, result
