"""`GET /metrics`: the gateway's Prometheus metrics in the text exposition format.

Outside `/v1`, where Prometheus looks by default. It needs the API token like every other
route unless the operator turns that off (`GALAXY_METRICS_REQUIRE_TOKEN=false`), e.g. for a
Prometheus on the same host; Prometheus sends a token with `authorization: {credentials: ...}`.
What the metrics are: assistant/metrics.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from assistant.api.deps import StateDep, require_token
from assistant.errors import Unavailable
from assistant.metrics import GatewayMetrics

router = APIRouter(tags=["metrics"])
_bearer = HTTPBearer(auto_error=False, description="the API token (unless the operator opted out)")


def metrics_access(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if state.settings.metrics_require_token:
        require_token(request, state, credentials)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(state: StateDep, _: Annotated[None, Depends(metrics_access)]) -> Response:
    """Every metric of this gateway (async: the cluster's gauges are read on the event loop,
    where the cluster's state changes)."""
    found = state.extras.get("metrics")
    if not isinstance(found, GatewayMetrics):
        raise Unavailable("metrics are not set up on this gateway")
    return Response(generate_latest(found.registry), media_type=CONTENT_TYPE_LATEST)
