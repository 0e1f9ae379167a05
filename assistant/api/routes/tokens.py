"""The household's credentials: API tokens with a name and a scope, and the gateway's backup.
Every route here needs a full token (the owner's).

- `GET /v1/tokens`: every token (never the token itself): name, scope, created, last used;
- `POST /v1/tokens` `{"name", "scope": "full" | "read"}`: a new token, shown once; a "read"
  token may only GET (a dashboard on a wall, a metrics scraper);
- `DELETE /v1/tokens/{id}`: revoked at once (the last full token cannot be: nobody could
  manage the home any more);
- `GET /v1/backup`: the CA, the databases and the home's state in one file encrypted with the
  token that asks for it (assistant/trust/backup.py; `galaxy backup` / `galaxy restore`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Path, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from assistant.api.deps import Owner, StateDep
from assistant.api.guard import GuardedRoute
from assistant.trust.backup import make_backup
from assistant.trust.tokens import hash_token, new_token

router = APIRouter(tags=["credentials"], route_class=GuardedRoute)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w .-]+$")
    scope: Literal["full", "read"] = "full"


class TokenOut(BaseModel):
    id: int
    name: str
    scope: str
    created: float
    last_used: float | None
    revoked: bool


class NewToken(TokenOut):
    token: str  # shown once


@router.get("/tokens")
def list_tokens(state: StateDep, _: Owner) -> list[TokenOut]:
    return [
        TokenOut(
            id=t.id,
            name=t.label,
            scope=t.scope,
            created=t.created,
            last_used=t.last_used,
            revoked=t.revoked,
        )
        for t in state.store.tokens()
    ]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenIn, state: StateDep, _: Owner) -> NewToken:
    token = new_token()
    token_id = state.store.add_token(hash_token(token), body.name, body.scope)
    made = next(t for t in state.store.tokens() if t.id == token_id)
    return NewToken(
        id=made.id,
        name=made.label,
        scope=made.scope,
        created=made.created,
        last_used=None,
        revoked=False,
        token=token,
    )


@router.delete("/tokens/{token_id}")
def revoke_token(
    state: StateDep, _: Owner, token_id: Annotated[int, Path(ge=1, le=2**62)]
) -> TokenOut:
    tokens = {t.id: t for t in state.store.tokens()}
    if token_id not in tokens:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no token {token_id}")
    target = tokens[token_id]
    full_left = [t for t in tokens.values() if t.scope == "full" and not t.revoked]
    if target.scope == "full" and not target.revoked and len(full_left) == 1:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="this is the last full token: make another full token before revoking it",
        )
    state.store.revoke_token(token_id)
    t = next(t for t in state.store.tokens() if t.id == token_id)
    return TokenOut(
        id=t.id, name=t.label, scope=t.scope, created=t.created, last_used=t.last_used, revoked=True
    )


@router.get(
    "/backup",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def backup(
    state: StateDep, _: Owner, authorization: Annotated[str, Header()] = ""
) -> Response:
    """The gateway's state, encrypted with the token this request carries."""
    token = authorization[7:] if authorization.lower().startswith("bearer ") else ""
    if not token:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="a backup is encrypted with your token: send it"
        )
    data_dir = state.settings.resolved_data_dir()
    blob = await asyncio.to_thread(make_backup, data_dir, state.store, token)
    return Response(
        blob,
        media_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="galaxy-home.backup"'},
    )
