"""Dependencies of the routes: the shared state and the API token check."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from assistant.api.state import GatewayState
from assistant.trust.tokens import hash_token

_bearer = HTTPBearer(auto_error=False, description="the API token shown at first start")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USE_RECORDED_EVERY_S = 30.0  # a token's last use is written at most this often


def scope_of(state: GatewayState, token: str | None, client: str) -> str | None:
    """ "full" (the owner's), "read" (GET only), or None for a missing, unknown or revoked
    token; a request from loopback counts as full when the operator allows it."""
    if token:
        found = state.store.find_token(hash_token(token))
        if found is not None and not found.revoked:
            now = time.time()
            if found.last_used is None or now - found.last_used > USE_RECORDED_EVERY_S:
                state.store.token_used(found.id, now)
            return found.scope
    if state.settings.allow_loopback_without_token and client in LOOPBACK:
        return "full"
    return None


def _unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API token: send 'Authorization: Bearer <token>' (the token "
        "was printed when the gateway first started)",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_token(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """A valid bearer token (a read-only one only for reading), or (when the operator allows
    it) a request from loopback."""
    client = request.client.host if request.client else ""
    scope = scope_of(state, credentials.credentials if credentials else None, client)
    if scope is None:
        raise _unauthorized()
    if scope != "full" and request.method not in READ_METHODS:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="this token is read-only: changes need a full token (GET /v1/tokens lists "
            "them; the owner makes one with POST /v1/tokens)",
        )


def require_owner(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """A full token, whatever the method (tokens, backups)."""
    client = request.client.host if request.client else ""
    scope = scope_of(state, credentials.credentials if credentials else None, client)
    if scope is None:
        raise _unauthorized()
    if scope != "full":
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only a full token may do this")


Authorized = Annotated[None, Depends(require_token)]
Owner = Annotated[None, Depends(require_owner)]
