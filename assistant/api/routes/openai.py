"""OpenAI's API over the home's cluster, so Home Assistant, Open WebUI and scripts written
against the OpenAI client use Galaxy Home as they use any local AI service (base URL
`http://<gateway>:8000/v1`, the API token as the key):

- `GET /v1/models`, `GET /v1/models/{id}`: the served models, and `galaxy-assist`;
- `POST /v1/chat/completions`: a served chat model (`smollm2-135m`) answers the messages as
  they are; `galaxy-assist` runs the voice pipeline's text path on the last user message: a
  home command is recognised and acted on (templates, then the classifier), anything else is
  answered by the conversation model with the home's state in its prompt and the earlier turns
  as history (the client's own system messages are left out: the assistant has its own). Its
  reply is the assistant message; `chatcmpl-<id>` carries the request id that the home's change
  log records;
- `POST /v1/embeddings`: the embedding model, as `/v1/embed` computes it.

Sampling (plain models; `galaxy-assist` decodes as the voice assistant does and ignores it):
`temperature` and `top_p` mean what they mean to OpenAI when given, and 0 is greedy. An absent
`temperature` means greedy decoding, not OpenAI's 1: a home's scripts and integrations that
leave it out want the same answer to the same question, and a 135M model sampled at 1 wanders.
`max_tokens` / `max_completion_tokens` default to the gateway's `max_new_tokens` and may not
exceed it; `stop` (up to 4 strings) ends the answer before the stop string; `seed` seeds the
sampler. `usage` counts the prompt's and the answer's tokens (for `galaxy-assist`: the user's
text and the reply, by the chat model's tokenizer, whichever path answered).

Streaming sends OpenAI's `chat.completion.chunk` events as the tokens are decoded (the role
first, the finish reason last, a usage chunk when `stream_options.include_usage`, then
`data: [DONE]`). A client that goes away, mid-stream or while waiting for a whole answer, stops
the generation at the next decode step and frees the cluster (the request log says
`cancelled`), a `galaxy-assist` conversation at its next decode step too. Errors are OpenAI's
(assistant/api/errors.py `OpenAIRoute`); one that happens mid-stream is an `error` event.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from assistant.api.deps import Authorized, StateDep
from assistant.api.errors import OpenAIRoute, openai_error_of
from assistant.api.openai_schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    EmbeddingItem,
    EmbeddingList,
    EmbeddingRequest,
    ModelCard,
    ModelList,
    Usage,
    completion_chunk,
)
from assistant.api.routes.inference import check_lengths, logged
from assistant.api.state import GatewayState
from assistant.cluster.inference import SamplingParams, chat, embed
from assistant.errors import InvalidInput, Unavailable, UnknownModel
from edge_worker.errors import GalaxyError

router = APIRouter(tags=["openai"], route_class=OpenAIRoute)

ASSIST = "galaxy-assist"
STARTED = int(time.time())  # every model's `created`: when this gateway started serving
HISTORY_MESSAGES = 6  # earlier turns galaxy-assist keeps: each costs prefill on the devices
EMBED_BATCH = 32  # texts per cluster request, as /v1/embed takes them
DISCONNECT_POLL_S = 0.25  # how often a waiting request checks that its client is still there
_running: set[asyncio.Task[Any]] = set()  # generations whose client may already be gone


# ----- models -----


def _cards(state: GatewayState) -> list[ModelCard]:
    names = [*sorted(state.manager.models), *([ASSIST] if state.voice is not None else [])]
    return [ModelCard(id=n, created=STARTED) for n in names]


@router.get("/models")
async def list_models(state: StateDep, _: Authorized) -> ModelList:
    """The models this gateway serves, and `galaxy-assist` (the voice assistant as text)."""
    return ModelList(data=_cards(state))


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, state: StateDep, _: Authorized) -> ModelCard:
    for card in _cards(state):
        if card.id == model_id:
            return card
    raise UnknownModel(f"model {model_id!r} is not served here; GET /v1/models lists them")


# ----- chat -----


@dataclass
class Reply:
    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    timings: dict[str, Any]
    plan: dict[str, Any] | None


@dataclass
class Run:
    """One chat answer under way: its text deltas, bridged from the cluster's worker thread to
    the event loop, end with None once `task` is done."""

    id: str
    model: str
    task: asyncio.Task[Reply]
    queue: asyncio.Queue[str | None]
    cancel: threading.Event
    created: int = field(default_factory=lambda: int(time.time()))

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return completion_chunk(self.id, self.created, self.model, delta, finish)


@router.post("/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, state: StateDep, _: Authorized
) -> Response | ChatCompletion:
    """OpenAI's chat completion (see the module's docstring for what each field does here)."""
    run = _start(state, body)
    if body.stream:
        return await _stream(request, run, body.include_usage())
    if not await _while_connected(request, run, run.task):
        return Response(status_code=499)  # nobody is listening any more
    reply = run.task.result()
    return ChatCompletion(
        id=run.id,
        created=run.created,
        model=run.model,
        choices=[
            Choice(
                message=AssistantMessage(content=reply.text),
                finish_reason="length" if reply.finish_reason == "length" else "stop",
            )
        ],
        usage=Usage.of(reply.prompt_tokens, reply.completion_tokens),
    )


def _start(state: GatewayState, body: ChatCompletionRequest) -> Run:
    """Check the request, then start answering it in the background (errors found here are
    the client's: they answer before any streaming starts)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    cancel = threading.Event()
    rid = secrets.token_hex(8)

    def on_text(delta: str) -> None:  # on a worker thread, or on the loop for a home command
        loop.call_soon_threadsafe(queue.put_nowait, delta)

    check_lengths(state, [m.text() for m in body.messages])
    work: Coroutine[Any, Any, Reply]
    if body.model == ASSIST:
        work = _assist(state, body, rid, on_text, cancel)
    else:
        work = _generate(state, body, on_text, cancel)
    task = loop.create_task(work)
    _running.add(task)
    task.add_done_callback(_running.discard)
    task.add_done_callback(lambda _: queue.put_nowait(None))
    task.add_done_callback(lambda t: _record(state, body.model, t))
    return Run(f"chatcmpl-{rid}", body.model, task, queue, cancel)


def _generate(
    state: GatewayState,
    body: ChatCompletionRequest,
    on_text: Callable[[str], None],
    cancel: threading.Event,
) -> Coroutine[Any, Any, Reply]:
    served = state.manager.served(body.model)  # UnknownModel: 404
    if not served.cfg.causal:
        raise InvalidInput(
            f"{body.model!r} is an embedding model (POST /v1/embeddings); chat with "
            f"{state.settings.generate_model!r} or {ASSIST!r}"
        )
    limit = state.settings.max_new_tokens
    given = [n for n in (body.max_completion_tokens, body.max_tokens) if n is not None]
    if len(set(given)) > 1:
        raise InvalidInput(f"max_tokens and max_completion_tokens disagree ({given}); send one")
    wanted = given[0] if given else limit
    if wanted > limit:
        raise InvalidInput(
            f"max_tokens {wanted} is past this gateway's limit of {limit} tokens "
            "(GALAXY_MAX_NEW_TOKENS); ask for fewer"
        )
    params = SamplingParams(
        max_new_tokens=wanted,
        temperature=body.temperature or 0.0,  # absent: greedy (the module's docstring)
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
    )
    messages = [m.as_chat() for m in body.messages]

    async def run() -> Reply:
        a = await chat(
            state.manager,
            body.model,
            messages,
            params,
            state.settings.request_timeout_s,
            on_text=on_text,
            cancel=cancel,
            stop=body.stop_list(),
        )
        return Reply(a.text, a.finish_reason, a.prompt_tokens, len(a.tokens), a.timings, a.plan)

    return run()


def _assist(
    state: GatewayState,
    body: ChatCompletionRequest,
    rid: str,
    on_text: Callable[[str], None],
    cancel: threading.Event,
) -> Coroutine[Any, Any, Reply]:
    voice = state.voice
    if voice is None:
        raise Unavailable("the voice pipeline is still loading; retry in a moment", 2.0)
    *earlier, last = body.messages
    if last.role != "user" or not last.text().strip():
        raise InvalidInput(f"{ASSIST} answers the last message, which must be a non-blank user one")
    history = [m.as_chat() for m in earlier if m.role in ("user", "assistant")]
    history = history[-HISTORY_MESSAGES:]
    text = last.text().strip()
    started = False

    def stripped(delta: str) -> None:  # the reply is stripped: so is what streams of it
        nonlocal started
        if not started:
            delta = delta.lstrip()
            started = bool(delta)
        if delta:
            on_text(delta)

    async def run() -> Reply:
        a = await voice.answer(text, rid, on_text=stripped, history=history, cancel=cancel)
        tok = state.manager.served(state.settings.generate_model).tokenizer

        def count(s: str) -> int:
            return len(tok(s, add_special_tokens=False)["input_ids"]) if tok else 0

        return Reply(a.text, "stop", count(text), count(a.text), a.timings, a.plan)

    return run()


def _record(state: GatewayState, model: str, task: asyncio.Task[Reply]) -> None:
    """The request log's line for one answer (ok, cancelled or failed), written when it ends."""
    if task.cancelled():
        state.store.log_request("openai", model, "failed", {}, None, "stopped with the gateway")
        return
    exc = task.exception()
    if exc is not None:
        state.store.log_request("openai", model, "failed", {}, None, str(exc))
        return
    reply = task.result()
    status = "cancelled" if reply.finish_reason == "cancelled" else "ok"
    timings = {
        **reply.timings,
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
    }
    state.store.log_request("openai", model, status, timings, reply.plan)


async def _while_connected(request: Request, run: Run, waiting: Awaitable[Any]) -> bool:
    """Wait for `waiting` while the client is there; if it leaves, cancel the generation (the
    cluster is freed at the next decode step) and answer False."""
    future = asyncio.ensure_future(waiting)
    while True:
        done, _ = await asyncio.wait({future}, timeout=DISCONNECT_POLL_S)
        if done:
            return True
        if await request.is_disconnected():
            run.cancel.set()
            if future is not run.task:
                future.cancel()
            return False


async def _stream(request: Request, run: Run, include_usage: bool) -> Response:
    """Server-sent events from the first delta on. Until that delta (or the end) comes, an
    error is still an HTTP status: a full queue, a prompt that is too long."""
    first = asyncio.ensure_future(run.queue.get())
    if not await _while_connected(request, run, first):
        return Response(status_code=499)
    failed = run.task.exception() if run.task.done() else None
    if first.result() is None and failed is not None:
        raise failed  # OpenAIRoute answers it
    return StreamingResponse(
        _events(run, first.result(), include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


async def _events(run: Run, first: str | None, include_usage: bool) -> AsyncIterator[bytes]:
    """The chunks of one answer. If the client goes, Starlette cancels this generator where it
    waits for the next delta: `finally` then stops the generation."""
    try:
        yield _sse(run.chunk({"role": "assistant", "content": ""}))
        sent, delta = "", first
        while delta is not None:
            sent += delta
            yield _sse(run.chunk({"content": delta}))
            delta = await run.queue.get()
        try:
            reply = run.task.result()
        except GalaxyError as exc:  # mid-stream: the status was sent long ago
            yield _sse(bytes(openai_error_of(exc).body).decode())
            return
        if reply.text.startswith(sent) and len(reply.text) > len(sent):
            yield _sse(run.chunk({"content": reply.text[len(sent) :]}))  # a held-back tail
        finish = "length" if reply.finish_reason == "length" else "stop"
        yield _sse(run.chunk({}, finish))
        if include_usage:
            usage = Usage.of(reply.prompt_tokens, reply.completion_tokens).model_dump()
            yield _sse({**run.chunk({}), "choices": [], "usage": usage})
        yield _sse("[DONE]")
    finally:
        if not run.task.done():
            run.cancel.set()


# ----- embeddings -----


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, state: StateDep, _: Authorized) -> EmbeddingList:
    """OpenAI's embeddings: the same vectors as `/v1/embed` (mean-pooled, normalised), in
    batches of 32 texts per cluster request."""
    served = state.manager.served(body.model)  # UnknownModel: 404
    if served.cfg.causal:
        raise InvalidInput(
            f"{body.model!r} is a chat model; embed with {state.settings.embed_model!r}"
        )
    dims = served.cfg.hidden_size
    if body.dimensions is not None and body.dimensions != dims:
        raise InvalidInput(f"{body.model} embeds in {dims} dimensions, not {body.dimensions}")
    texts = body.texts()
    check_lengths(state, texts)
    deadline = state.settings.request_timeout_s
    vectors: list[np.ndarray] = []
    for i in range(0, len(texts), EMBED_BATCH):
        batch = texts[i : i + EMBED_BATCH]
        call = partial(embed, state.manager, body.model, batch, deadline)
        out = await logged(state, "openai", body.model, call)
        vectors.extend(out.vectors.float().numpy())
    tok = served.tokenizer
    counted = tok(texts, truncation=True, max_length=served.cfg.max_positions)["input_ids"]
    used = sum(len(ids) for ids in counted)
    return EmbeddingList(
        data=[EmbeddingItem.of(i, v, body.encoding_format) for i, v in enumerate(vectors)],
        model=body.model,
        usage=Usage.of(used),
    )
