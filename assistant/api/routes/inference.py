"""Text in, embeddings or generated text out, computed across the home's devices."""

from __future__ import annotations

import time
from typing import Any

import torch
from fastapi import APIRouter, HTTPException, status

from assistant.api.deps import Authorized, StateDep
from assistant.api.schemas import EmbedRequest, EmbedResponse, GenerateRequest, GenerateResponse
from assistant.cluster.manager import DeadlineExceeded, QueueFull, mean_pool
from edge_worker.engine.generate import SamplingParams, chat
from edge_worker.errors import GalaxyError

router = APIRouter(tags=["inference"])


def _served(state: StateDep, requested: str | None, default: str) -> str:
    model = requested or default
    if model not in state.manager.models or (requested and requested != default):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"model {model!r} is not served for this route; it serves {default!r}",
        )
    return model


def _too_long(state: StateDep, texts: list[str]) -> None:
    limit = state.settings.max_text_chars
    for t in texts:
        if len(t) > limit:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                detail=f"text of {len(t)} characters; this gateway accepts up to {limit}",
            )


async def _run(
    state: StateDep, kind: str, model: str, work: Any
) -> tuple[Any, Any, dict[str, Any]]:
    started = time.perf_counter()
    try:
        result, dep, timings = await state.manager.run(
            model, work, state.settings.request_timeout_s
        )
    except QueueFull as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"busy: {exc}; retry shortly",
            headers={"Retry-After": "2"},
        ) from None
    except (DeadlineExceeded, GalaxyError) as exc:
        state.store.log_request(kind, model, "failed", {}, None, str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc), headers={"Retry-After": "5"}
        ) from None
    timings["total_ms"] = round((time.perf_counter() - started) * 1e3, 2)
    state.store.log_request(kind, model, "ok", timings, dep.describe())
    return result, dep, timings


@router.post("/embed")
async def embed(body: EmbedRequest, state: StateDep, _: Authorized) -> EmbedResponse:
    _too_long(state, body.texts)
    model = _served(state, body.model, state.settings.embed_model)
    served = state.manager.models[model]
    tok = served.loaded.tokenizer
    assert tok is not None, "embedding models are served with their tokenizer"
    batch = tok(
        body.texts,
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

    vectors, dep, timings = await _run(state, "embed", model, work)
    return EmbedResponse(
        model=model,
        embeddings=vectors.tolist(),
        dimensions=vectors.shape[1],
        timings=timings,
        plan=dep.describe(),
    )


@router.post("/generate")
async def generate_text(body: GenerateRequest, state: StateDep, _: Authorized) -> GenerateResponse:
    texts = [body.prompt] if body.prompt is not None else [m.content for m in body.messages or []]
    _too_long(state, texts)
    if body.max_new_tokens > state.settings.max_new_tokens:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"max_new_tokens {body.max_new_tokens} exceeds this gateway's limit "
            f"{state.settings.max_new_tokens}",
        )
    model = _served(state, body.model, state.settings.generate_model)
    served = state.manager.models[model]
    tok = served.loaded.tokenizer
    messages = (
        [{"role": "user", "content": body.prompt}]
        if body.prompt is not None
        else [m.model_dump() for m in body.messages or []]
    )
    params = SamplingParams(
        max_new_tokens=body.max_new_tokens,
        temperature=body.temperature,
        top_k=body.top_k,
        top_p=body.top_p,
        seed=body.seed,
    )

    def work(runner: Any) -> tuple[str, Any]:
        return chat(runner, tok, messages, params)

    (text, gen), dep, timings = await _run(state, "generate", model, work)
    timings["prefill_ms"] = round(gen.prefill_ms, 2)
    if gen.decode_ms:
        timings["decode_ms_per_token"] = round(sum(gen.decode_ms) / len(gen.decode_ms), 2)
    return GenerateResponse(
        model=model,
        text=text,
        tokens=gen.tokens,
        finish_reason=gen.finish_reason,
        timings=timings,
        plan=dep.describe(),
    )
