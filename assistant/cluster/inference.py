"""Requests to the cluster, as the rest of the gateway makes them: embed texts, answer a chat.

The routes, the voice pipeline and the OpenAI-compatible API reach the engine only through
these calls (DESIGN.md, section 1b). Each runs on the model's current plan with failover
(manager.py) and returns what it computed, the plan it ran on and where the time went.

    vectors = (await embed(manager, "minilm", ["turn on the light"], 30)).vectors  # (N, 384)
    answer = await chat(manager, "smollm2-135m", messages, SamplingParams(), 120,
                        on_text=print)                       # deltas as they are decoded
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import torch

from assistant.cluster.manager import ClusterManager
from assistant.cluster.models import ServedModel, mean_pool
from assistant.errors import InvalidInput, TooLarge
from edge_worker.engine.generate import Generation, SamplingParams, generate, make_rng

__all__ = ["Answer", "Embedded", "SamplingParams", "chat", "embed", "prompt_ids"]


@dataclass
class Embedded:
    vectors: torch.Tensor  # (N, d), L2-normalised
    plan: dict[str, Any]
    timings: dict[str, Any]


@dataclass
class Answer:
    text: str
    tokens: list[int]
    finish_reason: Literal["stop", "length", "cancelled"]
    prompt_tokens: int
    plan: dict[str, Any]
    timings: dict[str, Any]


class _Cancelled(Exception):
    """Raised between decode steps when the caller gave up (a client that disconnected)."""


class _StopString(Exception):
    """Raised between decode steps when the text reached one of the caller's stop strings."""


async def embed(
    manager: ClusterManager, model: str, texts: list[str], deadline_s: float
) -> Embedded:
    """Sentence embeddings of `texts` (mean-pooled, normalised, as sentence-transformers)."""
    started = time.perf_counter()
    served = manager.served(model)
    if served.tokenizer is None:
        raise InvalidInput(f"model {model!r} has no tokenizer: it cannot embed text")
    batch = served.tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=served.cfg.max_positions,
        return_tensors="pt",
    )

    def work(runner: Any) -> torch.Tensor:
        out = runner.prefill(
            batch["input_ids"], batch.get("token_type_ids"), batch["attention_mask"]
        )
        return mean_pool(out.hidden, batch["attention_mask"])

    vectors, dep, timings = await manager.run(model, work, deadline_s)
    timings["total_ms"] = round((time.perf_counter() - started) * 1e3, 2)
    return Embedded(vectors, dep.describe(), timings)


def prompt_ids(served: ServedModel, messages: list[dict[str, str]]) -> list[int]:
    """The token ids of a chat, through the model's own chat template."""
    tok = served.tokenizer
    if tok is None:
        raise InvalidInput(f"model {served.name!r} has no tokenizer: it cannot chat")
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    limit = served.cfg.max_positions
    if len(ids) >= limit:
        raise TooLarge(f"the prompt has {len(ids)} tokens; {served.name} takes at most {limit}")
    return ids


async def chat(
    manager: ClusterManager,
    model: str,
    messages: list[dict[str, str]],
    params: SamplingParams,
    deadline_s: float,
    on_text: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    stop: Sequence[str] = (),
) -> Answer:
    """Answer `messages` with the model's chat template. `on_text(delta)` hears the text as it
    is decoded (on a worker thread); setting `cancel` stops the generation at the next step
    and frees the cluster (finish_reason "cancelled"). `stop`: strings that end the generation
    where one first appears (finish_reason "stop"); neither the answer nor `on_text` sees the
    stop string or anything after it, and text that may be the start of one is held back from
    `on_text` until the next tokens settle it. A failover mid-generation resumes on the new
    plan from the tokens already generated; `timings`' prefill and decode figures are then the
    resumed run's."""
    started = time.perf_counter()
    served = manager.served(model)
    ids = prompt_ids(served, messages)
    tok = served.tokenizer
    eos = getattr(tok, "eos_token_id", None)
    if eos is not None:
        params = SamplingParams(**{**params.__dict__, "stop_ids": params.stop_ids | {eos}})
    room = served.cfg.max_positions - len(ids)
    if params.max_new_tokens > room:
        params = SamplingParams(**{**params.__dict__, "max_new_tokens": room})
    stops = tuple(s for s in stop if s)

    stream = _TextStream(tok, on_text, stops)
    rng = make_rng(params)  # one per request: a resumed run samples on where the last stopped

    def work(runner: Any) -> tuple[Generation, str | None] | None:
        # Run again after a failover, this resumes: it prefills the prompt and the tokens the
        # cut-off run already picked (`stream.tokens`) and decodes on from there; `stream`
        # says only text past what was already said.
        marks = [time.perf_counter()]  # when each token came: the times of a cut-off run

        def step(token: int) -> None:
            marks.append(time.perf_counter())
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            if stream.push(token):
                raise _StopString

        try:
            gen = generate(runner, ids, params, step, prior=tuple(stream.tokens), rng=rng)
        except _Cancelled:
            return None
        except _StopString:
            # All the tokens, timed as `generate` times a resumed run: this run's own steps.
            gaps = [(b - a) * 1e3 for a, b in pairwise(marks[1:])]
            cut = Generation(list(stream.tokens), "stop", (marks[1] - marks[0]) * 1e3, gaps)
            return cut, stream.stopped_text
        stream.flush()
        return gen, None

    out, dep, timings = await manager.run(model, work, deadline_s)
    timings["total_ms"] = round((time.perf_counter() - started) * 1e3, 2)
    if out is None:
        return Answer("", [], "cancelled", len(ids), dep.describe(), timings)
    gen, stopped_text = out
    timings["prefill_ms"] = round(gen.prefill_ms, 2)
    if gen.decode_ms:
        timings["decode_ms_per_token"] = round(sum(gen.decode_ms) / len(gen.decode_ms), 2)
    text = (
        tok.decode(gen.tokens, skip_special_tokens=True) if stopped_text is None else stopped_text
    )
    return Answer(text, gen.tokens, gen.finish_reason, len(ids), dep.describe(), timings)


class _TextStream:
    """Turns tokens into text deltas as they come: the text decoded so far, less what was
    already said, holding back a trailing partial character (a multi-byte UTF-8 sequence split
    across tokens decodes to U+FFFD until its last byte arrives) and a tail that may be the
    start of a stop string. `push` answers True once a stop string has appeared."""

    def __init__(
        self, tokenizer: Any, on_text: Callable[[str], None] | None, stops: tuple[str, ...] = ()
    ) -> None:
        self.tok, self.on_text, self.stops = tokenizer, on_text, stops
        self.tokens: list[int] = []
        self.said = ""
        self.stopped_text: str | None = None  # the text before the stop string, once stopped

    def push(self, token: int) -> bool:
        self.tokens.append(token)
        if self.on_text is None and not self.stops:
            return False
        text = self.tok.decode(self.tokens, skip_special_tokens=True)
        hits = [i for s in self.stops if (i := text.find(s)) >= 0]
        if hits:
            self.stopped_text = text[: min(hits)]
            self._say(self.stopped_text)
            return True
        if not text.endswith("\ufffd"):
            self._say(text[: len(text) - _held_back(text, self.stops)])
        return False

    def flush(self) -> None:
        """The end of a generation that met no stop string: say what was held back."""
        if self.stops and self.on_text is not None and self.tokens:
            text = self.tok.decode(self.tokens, skip_special_tokens=True)
            if not text.endswith("\ufffd"):
                self._say(text)

    def _say(self, text: str) -> None:
        if self.on_text is None or len(text) <= len(self.said):
            return
        delta, self.said = text[len(self.said) :], text
        self.on_text(delta)


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """The length of the longest tail of `text` that is the start of a stop string."""
    longest = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:k]):
                longest = k
                break
    return longest
