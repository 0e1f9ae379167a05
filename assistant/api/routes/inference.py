"""Text in, embeddings or generated text out, computed across the home's devices."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter

from assistant.api.deps import Authorized, StateDep
from assistant.api.guard import GuardedRoute
from assistant.api.schemas import EmbedRequest, EmbedResponse, GenerateRequest, GenerateResponse
from assistant.api.state import GatewayState
from assistant.cluster.inference import Answer, Embedded, SamplingParams, chat, embed
from assistant.errors import InvalidInput, TooLarge, UnknownModel
from edge_worker.errors import GalaxyError

router = APIRouter(tags=["inference"], route_class=GuardedRoute)
R = TypeVar("R", Answer, Embedded)


def served_for_route(state: GatewayState, requested: str | None, default: str) -> str:
    """The model a route runs: its default, or the same name given explicitly."""
    model = requested or default
    if model not in state.manager.models or (requested and requested != default):
        raise UnknownModel(f"model {model!r} is not served for this route; it serves {default!r}")
    return model


def check_lengths(state: GatewayState, texts: list[str]) -> None:
    limit = state.settings.max_text_chars
    for t in texts:
        if len(t) > limit:
            raise TooLarge(f"text of {len(t)} characters; this gateway accepts up to {limit}")


async def logged(state: GatewayState, kind: str, model: str, call: Callable[[], Awaitable[R]]) -> R:
    """Run a cluster request and write it to the request log (failures too)."""
    try:
        result = await call()
    except GalaxyError as exc:
        state.store.log_request(kind, model, "failed", {}, None, str(exc))
        raise
    timings = result.timings
    if isinstance(result, Answer):  # the sizes the dashboard sets beside the plan's prediction
        timings = {
            **timings,
            "prompt_tokens": result.prompt_tokens,
            "new_tokens": len(result.tokens),
        }
    state.store.log_request(kind, model, "ok", timings, result.plan)
    return result


@router.post("/embed")
async def embed_texts(body: EmbedRequest, state: StateDep, _: Authorized) -> EmbedResponse:
    check_lengths(state, body.texts)
    model = served_for_route(state, body.model, state.settings.embed_model)
    deadline = state.settings.request_timeout_s
    out = await logged(
        state, "embed", model, lambda: embed(state.manager, model, body.texts, deadline)
    )
    return EmbedResponse(
        model=model,
        embeddings=out.vectors.tolist(),
        dimensions=out.vectors.shape[1],
        timings=out.timings,
        plan=out.plan,
    )


@router.post("/generate")
async def generate_text(body: GenerateRequest, state: StateDep, _: Authorized) -> GenerateResponse:
    texts = [body.prompt] if body.prompt is not None else [m.content for m in body.messages or []]
    check_lengths(state, texts)
    if body.max_new_tokens > state.settings.max_new_tokens:
        raise InvalidInput(
            f"max_new_tokens {body.max_new_tokens} exceeds this gateway's limit "
            f"{state.settings.max_new_tokens}"
        )
    model = served_for_route(state, body.model, state.settings.generate_model)
    messages: list[dict[str, Any]] = (
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
    deadline = state.settings.request_timeout_s
    answer = await logged(
        state,
        "generate",
        model,
        lambda: chat(state.manager, model, messages, params, deadline),
    )
    assert answer.finish_reason != "cancelled", "only a caller's cancel event cancels"
    return GenerateResponse(
        model=model,
        text=answer.text,
        tokens=answer.tokens,
        finish_reason=answer.finish_reason,
        timings=answer.timings,
        plan=answer.plan,
    )
