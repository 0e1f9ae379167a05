"""Dependencies of the routes: the shared state and the API token check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from assistant.api.state import GatewayState
from assistant.trust.tokens import verify_token

_bearer = HTTPBearer(auto_error=False, description="the API token shown at first start")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]


def require_token(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """A valid bearer token, or (when the operator allows it) a request from loopback."""
    if credentials is not None and any(
        verify_token(credentials.credentials, h) for h in state.store.token_hashes()
    ):
        return
    client = request.client.host if request.client else ""
    if state.settings.allow_loopback_without_token and client in LOOPBACK:
        return
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API token: send 'Authorization: Bearer <token>' (the token "
        "was printed when the gateway first started)",
        headers={"WWW-Authenticate": "Bearer"},
    )


Authorized = Annotated[None, Depends(require_token)]
