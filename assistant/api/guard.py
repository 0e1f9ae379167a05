"""Request bodies we do not trust: read with a size limit, decoded as strict JSON.

Every route that takes a JSON body uses `GuardedRoute` (the OpenAI routes through `OpenAIRoute`,
which extends it), whose requests read the body and decode it here:

- a body over the gateway's upload limit (`max_upload_mb`, announced by Content-Length or
  found while reading) is refused with 413 before the rest is read;
- the body is decoded by `assistant/strict_json.py: decode_json`, which refuses, with where
  and why, what Python's `json` module would let through and the code behind it cannot use
  (not UTF-8, NaN and infinities, huge integers, lone surrogates, deep nesting).

A refusal is a `json.JSONDecodeError`, which FastAPI answers as a request validation error
(422 `json_invalid` with the reason; OpenAI's 400 on the OpenAI routes, errors.py). Nothing
here echoes the offending text back unescaped.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.routing import APIRoute
from starlette.responses import Response

from assistant.strict_json import decode_json


class GuardedRequest(Request):
    """A request whose body is read with the gateway's size limit and decoded strictly."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limit = int(self.app.state.gateway.settings.max_upload_mb * 2**20)
            declared = self.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _too_large(int(declared), limit)
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(size, limit)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = decode_json(await self.body())
        return self._json


def _too_large(size: int, limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"a request body of {size / 2**20:.1f} MB or more; the limit is "
        f"{limit / 2**20:.1f} MB (GALAXY_MAX_UPLOAD_MB)",
        # The rest of the body is never read: the connection cannot carry another request.
        headers={"Connection": "close"},
    )


class GuardedRoute(APIRoute):
    """A route whose handler sees a `GuardedRequest` (FastAPI's custom request class pattern)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            return await handler(GuardedRequest(request.scope, request.receive))

        return guarded
