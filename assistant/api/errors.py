"""The one place where the project's errors become HTTP answers.

Routes raise the domain's exceptions (assistant/errors.py, edge_worker/errors.py) and never
build an `HTTPException` for them. Transient trouble answers 503 (429 for a rate limit) with
`Retry-After`; a permanent refusal answers the 4xx below with its message, so a client knows
not to retry. Every answer is `{"detail": message}`, as FastAPI's own errors are; a request
validation error keeps FastAPI's 422 `{"detail": [{type, loc, msg, input, ctx}]}`, with every
echoed value made safe to send (a non-finite number or a lone surrogate in the input made
FastAPI's own answer fail with a 500) and cut short.

The OpenAI-compatible routes (routes/openai.py) answer in OpenAI's shape instead, so OpenAI's
clients raise their own exception types: `{"error": {"message", "type", "param", "code"}}`.
Their router uses `OpenAIRoute`, which turns a request validation error (FastAPI's 422, a body
that is not JSON) and every permanent refusal into 400 `invalid_request_error` (with the
offending field as `param`), an unknown model into 404 `model_not_found`, a missing token
into 401 `invalid_api_key`, and transient trouble into 503 / 429 with `Retry-After`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from assistant.api.guard import GuardedRoute
from assistant.errors import (
    BadRequest,
    EmptyAudio,
    InvalidAction,
    InvalidInput,
    PairingRefused,
    RateLimited,
    Retryable,
    TooLarge,
    UnknownDevice,
    UnknownModel,
    UnsupportedAudio,
)
from assistant.strict_json import escaped
from edge_worker.errors import (
    CommError,
    GalaxyError,
    ModelError,
    ModelNotAvailable,
    PlanError,
)

log = logging.getLogger(__name__)

# The most specific class first.
STATUS: tuple[tuple[type[GalaxyError], int], ...] = (
    (UnknownModel, 404),
    (ModelNotAvailable, 404),
    (UnknownDevice, 404),
    (PairingRefused, 403),
    (TooLarge, 413),
    (UnsupportedAudio, 415),
    (EmptyAudio, 422),
    (InvalidAction, 422),
    (InvalidInput, 422),
    (PlanError, 422),  # a plan that cannot run here: the same request fails again
    (ModelError, 422),
    (BadRequest, 400),
)
COMM_RETRY_S = 5.0  # a lost worker: failover has already been tried; the next plan may work


def status_of(exc: GalaxyError) -> tuple[int, float | None]:
    """(HTTP status, Retry-After seconds or None) for one of the project's errors."""
    if isinstance(exc, Retryable):
        return (429 if isinstance(exc, RateLimited) else 503), exc.retry_after_s
    if isinstance(exc, CommError):
        return 503, COMM_RETRY_S
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code, None
    return 500, None


def install(app: FastAPI) -> None:
    """Answer every `GalaxyError` a route lets through by the table above."""

    @app.exception_handler(GalaxyError)
    async def galaxy_error(request: Request, exc: GalaxyError) -> JSONResponse:
        code, retry = status_of(exc)
        if code >= 500:
            log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        headers = {"Retry-After": str(max(1, math.ceil(retry)))} if retry is not None else {}
        if code == 413:  # the rest of the body is never read: the connection cannot go on
            headers["Connection"] = "close"
        return JSONResponse({"detail": escaped(str(exc))}, status_code=code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": [_echoable(e) for e in exc.errors()]}, status_code=422)


ECHO_CHARS = 200  # of a refused value, in the answer
ECHO_ITEMS = 20


def _echoable(error: dict[str, Any]) -> dict[str, Any]:
    """One of pydantic's errors, safe to serialise: values shown as JSON can carry them."""
    out = {k: _safe(v) for k, v in error.items() if k in ("type", "loc", "msg", "input", "ctx")}
    if error.get("type") == "json_invalid":
        out["msg"] = f"JSON decode error: {_safe((error.get('ctx') or {}).get('error', ''))}"
    return out


def _safe(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return escaped(value[:ECHO_CHARS]) + ("..." if len(value) > ECHO_CHARS else "")
    if depth < 4 and isinstance(value, dict):
        items = list(value.items())[:ECHO_ITEMS]
        return {_safe(str(k)): _safe(v, depth + 1) for k, v in items}
    if depth < 4 and isinstance(value, list | tuple):
        return [_safe(v, depth + 1) for v in value[:ECHO_ITEMS]]
    return _safe(str(value)) if depth < 4 else "..."


# ----- OpenAI's error format, for the OpenAI-compatible routes only -----

_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def openai_error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error as OpenAI's API answers it (its clients read `error.message` and `error.code`)."""
    body = {"error": {"message": escaped(message), "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def openai_error_of(exc: GalaxyError) -> JSONResponse:
    """A project error in OpenAI's shape: 4xx refusals are 400 (an unknown model 404), as
    OpenAI's own are; transient ones keep their status and `Retry-After`."""
    code, retry = status_of(exc)
    headers = {"Retry-After": str(max(1, math.ceil(retry)))} if retry is not None else None
    if isinstance(exc, UnknownModel | ModelNotAvailable):
        return openai_error(404, str(exc), param="model", code="model_not_found")
    if code == 429:
        return openai_error(429, str(exc), kind="rate_limit_error", headers=headers)
    if code >= 500:
        return openai_error(code, str(exc), kind="server_error", headers=headers)
    return openai_error(400, str(exc))


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    """The most telling of pydantic's errors (a validator's own words before a type mismatch
    of a union member), with its field as OpenAI's `param`."""
    errors: list[dict[str, Any]] = list(exc.errors())
    if not errors:
        return openai_error(400, "the request body is invalid")
    # A validator's own words first, a union member's type mismatch last.
    err = min(errors, key=lambda e: (e.get("type") != "value_error", _is_mismatch(e)))
    loc = [p for p in err.get("loc", ()) if not (isinstance(p, str) and _is_tag(p))]
    if loc and loc[0] == "body":
        loc = loc[1:]
    param = ".".join(str(p) for p in loc) or None
    kind, msg = err.get("type"), str(err.get("msg", "invalid value"))
    if kind == "json_invalid":
        detail = (err.get("ctx") or {}).get("error", "")
        return openai_error(400, f"the body is not valid JSON ({detail}); send a JSON object")
    if kind == "extra_forbidden":
        return openai_error(400, f"Unrecognized request argument supplied: {param}", param=param)
    if kind == "missing":
        if param is None:
            return openai_error(400, "the request has no body: send a JSON object")
        return openai_error(400, f"Missing required parameter: {param!r}", param=param)
    msg = msg.removeprefix("Value error, ")
    return openai_error(400, f"{param}: {msg}" if param else msg, param=param)


def _is_tag(part: str) -> bool:
    return "[" in part or part in _UNION_TAGS


def _is_mismatch(err: dict[str, Any]) -> bool:
    return str(err.get("type", "")).endswith("_type")


class OpenAIRoute(GuardedRoute):
    """A route whose every error, from the body's parsing to the handler, is in OpenAI's shape
    (its body read and decoded as every route's is, guard.py).

    (An error raised while a streamed answer is already under way cannot change the status any
    more: the route sends it as a server-sent event instead.)"""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _validation_error(exc)
            except GalaxyError as exc:
                if status_of(exc)[0] >= 500:
                    log.warning(
                        "%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc
                    )
                return openai_error_of(exc)
            except HTTPException as exc:
                headers = dict(exc.headers or {})
                if exc.status_code == 401:
                    return openai_error(
                        401, str(exc.detail), code="invalid_api_key", headers=headers
                    )
                kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
                return openai_error(exc.status_code, str(exc.detail), kind=kind, headers=headers)

        return route
