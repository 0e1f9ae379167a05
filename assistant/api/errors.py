"""The one place where the project's errors become HTTP answers.

Routes raise the domain's exceptions (assistant/errors.py, edge_worker/errors.py) and never
build an `HTTPException` for them. Transient trouble answers 503 (429 for a rate limit) with
`Retry-After`; a permanent refusal answers the 4xx below with its message, so a client knows
not to retry. Every answer is `{"detail": message}`, as FastAPI's own errors are.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from assistant.errors import (
    BadRequest,
    EmptyAudio,
    InvalidAction,
    InvalidInput,
    RateLimited,
    Retryable,
    TooLarge,
    UnknownDevice,
    UnknownModel,
    UnsupportedAudio,
)
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
        headers = {"Retry-After": str(max(1, math.ceil(retry)))} if retry is not None else None
        return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)
