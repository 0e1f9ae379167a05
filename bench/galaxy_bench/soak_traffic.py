"""What `galaxy bench --soak` sends and how it judges the answers.

`mix()` alternates `POST /v1/embed` (MiniLM) and greedy `POST /v1/generate` (SmolLM2) over a
few fixed home prompts; `References` holds the single-device Hugging Face answers; `ask` sends
one request and sorts its outcome:
- ok: the right answer (embeddings within `EMBED_ATOL`, generated tokens equal);
- unavailable: 503 with Retry-After (an explicit "try again");
- wrong: an answer that differs from the reference;
- lost: any other failure (another status, a 503 without Retry-After, a dropped connection);
- hung: no answer within the client's timeout (the gateway's deadline plus `HUNG_MARGIN_S`).
The fault tests (tests/soak) use the same requests and references.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from assistant.launcher import RunningGateway

GENERATE_PROMPTS = (
    "List five things to pack for a picnic.",
    "What is the capital of France?",
    "Give me one tip to save energy at home.",
    "Name three colours of the rainbow.",
    "Write a short greeting for a birthday card.",
    "How many legs does a spider have?",
)
EMBED_TEXTS = (
    ("turn on the kitchen lights",),
    ("what is the temperature in the living room", "close the garage door"),
    ("set a timer for ten minutes",),
    ("play some music in the bedroom", "is the front door locked", "dim the hallway lights"),
    ("good night",),
    ("how much energy did the heater use today",),
)
EMBED_ATOL = 1e-4  # as the gateway's own equivalence tests (normalised vectors, |x| <= 1)
HUNG_MARGIN_S = 30.0


@dataclass(frozen=True)
class Request:
    kind: str  # "embed" | "generate"
    index: int  # into GENERATE_PROMPTS or EMBED_TEXTS

    def body(self, max_new_tokens: int) -> tuple[str, dict[str, Any]]:
        if self.kind == "generate":
            prompt = GENERATE_PROMPTS[self.index]
            return "/v1/generate", {"prompt": prompt, "max_new_tokens": max_new_tokens}
        return "/v1/embed", {"texts": list(EMBED_TEXTS[self.index])}


def mix() -> Iterator[Request]:
    """Embeddings and generations in turn, cycling through the prompts."""
    for i in itertools.count():
        kind = ("embed", "generate")[i % 2]
        n = len(EMBED_TEXTS) if kind == "embed" else len(GENERATE_PROMPTS)
        yield Request(kind, (i // 2) % n)


@dataclass
class References:
    """The single-device Hugging Face answers: greedy tokens per prompt, vectors per text set."""

    tokens: dict[int, list[int]]
    vectors: dict[int, torch.Tensor]

    @classmethod
    def compute(cls, max_new_tokens: int) -> References:
        from edge_worker.models.catalog import load_model

        lm = load_model("smollm2-135m")
        tok, decoder = lm.tokenizer, lm.model
        assert tok is not None
        generate: Any = decoder.generate  # transformers' GenerationMixin (untyped here)
        tokens = {}
        for i, prompt in enumerate(GENERATE_PROMPTS):
            text = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            with torch.inference_mode():
                out = generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.eos_token_id,
                )
            tokens[i] = out[0, ids.shape[1] :].tolist()
        enc = load_model("minilm")
        assert enc.tokenizer is not None
        vectors = {}
        for i, texts in enumerate(EMBED_TEXTS):
            batch = enc.tokenizer(list(texts), padding=True, return_tensors="pt")
            with torch.inference_mode():
                hidden = enc.model(**batch).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).float()
            vectors[i] = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)
        return cls(tokens, vectors)

    def right(self, request: Request, answer: dict[str, Any]) -> bool:
        if request.kind == "generate":
            return bool(answer.get("tokens") == self.tokens[request.index])
        got = torch.tensor(answer.get("embeddings", []))
        want = self.vectors[request.index]
        return got.shape == want.shape and bool((got - want).abs().max() <= EMBED_ATOL)


@dataclass
class Outcome:
    kind: str
    index: int
    start_s: float  # since the soak began
    end_s: float
    result: str  # ok | unavailable | wrong | lost | hung
    status: int | None = None  # HTTP status
    detail: str = ""
    failovers: int = 0
    devices: list[str] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return (self.end_s - self.start_s) * 1e3


def ask(
    gw: RunningGateway,
    request: Request,
    refs: References,
    max_new_tokens: int,
    timeout_s: float,
    t0: float,
) -> Outcome:
    """Send one request and judge its answer (see the module docstring)."""
    path, body = request.body(max_new_tokens)
    req = urllib.request.Request(gw.url + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {gw.token}")
    start = time.monotonic()

    def done(result: str, **kw: Any) -> Outcome:
        return Outcome(request.kind, request.index, start - t0, time.monotonic() - t0, result, **kw)

    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")[:200]
        if exc.code == 503 and exc.headers.get("Retry-After"):
            return done("unavailable", status=503, detail=text)
        return done("lost", status=exc.code, detail=text)
    except TimeoutError:
        return done("hung", detail=f"no answer within {timeout_s:.0f} s")
    except (urllib.error.URLError, OSError) as exc:
        hung = "timed out" in str(exc)
        return done("hung" if hung else "lost", detail=f"{type(exc).__name__}: {exc}"[:200])
    timings, plan = answer.get("timings", {}), answer.get("plan") or {}
    return done(
        "ok" if refs.right(request, answer) else "wrong",
        status=200,
        failovers=len(timings.get("failovers", [])),
        devices=list(plan.get("devices", [])),
        detail="" if refs.right(request, answer) else json.dumps(answer)[:300],
    )
