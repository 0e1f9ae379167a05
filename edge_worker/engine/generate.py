"""Autoregressive generation over any runner that can prefill and decode (batch of one).

A runner is anything with `prefill_last_logits(ids (1, T)) -> (1, V)` and
`decode(ids (1, 1)) -> (1, V)`: the in-process cluster, or the networked one. Sampling is
greedy at temperature 0, otherwise temperature / top-k / top-p with a seeded generator.

A generation cut off by a lost worker resumes on a fresh runner: `generate(..., prior=tokens,
rng=rng)` prefills the prompt and the tokens already picked and decodes on from there. With the
same `rng` object (`make_rng`, once per request) a resumed seeded generation picks exactly the
tokens an uninterrupted one picks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
    """A finished generation. `tokens` are all the generated tokens, a resumed attempt's
    `prior` included; `prefill_ms` and `decode_ms` (one per decode step) time only the attempt
    that returned it: after a resume, its prefill of prompt + prior and its own new steps."""

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


def make_rng(params: SamplingParams) -> torch.Generator | None:
    """The sampling generator of one request: seeded from `params.seed`, or None (torch's global
    one) without a seed. Make it once per request and hand it to every attempt's `generate`:
    its state then follows the tokens already picked, so a resumed attempt samples on where the
    cut-off one stopped."""
    if params.seed is None:
        return None
    return torch.Generator().manual_seed(params.seed)


def generate(
    runner: StepRunner,
    prompt_ids: list[int],
    params: SamplingParams,
    on_token: Callable[[int], None] | None = None,
    *,
    prior: Sequence[int] = (),
    rng: torch.Generator | None = None,
) -> Generation:
    """Generate up to `params.max_new_tokens` tokens after `prompt_ids`.

    `prior`: tokens an earlier, cut-off attempt already generated (and `on_token` already
    heard). The prefill covers prompt + prior, new tokens follow prior, `max_new_tokens` counts
    prior too, and a prior that already ended (a stop id, or the length) returns at once.
    `rng`: the request's sampling generator (`make_rng`); None makes a fresh one from
    `params`, which a seeded sampled resume refuses, since its tokens would then differ from an
    uninterrupted run's.
    """
    if not prompt_ids:
        raise ValueError("the prompt is empty: generation needs at least one token")
    if prior and rng is None and params.seed is not None and params.temperature > 0:
        raise ValueError("a seeded sampled resume needs the cut-off attempt's rng (make_rng)")
    gen = rng if rng is not None else make_rng(params)
    tokens = list(prior)
    if tokens and (done := _finished(tokens, params)):
        return Generation(tokens, done, 0.0, [])
    t0 = time.perf_counter()
    logits = runner.prefill_last_logits(torch.tensor([[*prompt_ids, *tokens]]))[0]
    prefill_ms = (time.perf_counter() - t0) * 1e3
    decode_ms: list[float] = []
    while True:
        token = pick_token(logits, params, gen)
        tokens.append(token)
        if on_token is not None:
            on_token(token)
        if done := _finished(tokens, params):
            return Generation(tokens, done, prefill_ms, decode_ms)
        t0 = time.perf_counter()
        logits = runner.decode(torch.tensor([[token]]))[0]
        decode_ms.append((time.perf_counter() - t0) * 1e3)


def _finished(tokens: list[int], params: SamplingParams) -> Literal["stop", "length"] | None:
    """Why a generation that has produced `tokens` (at least one) ends now, if it does."""
    if tokens[-1] in params.stop_ids:
        return "stop"
    if len(tokens) >= params.max_new_tokens:
        return "length"
    return None


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
