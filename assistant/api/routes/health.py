"""Liveness and a one-glance status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from assistant.api.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(state: StateDep) -> dict[str, Any]:
    """Always answers without a token: for load balancers and `docker compose` health checks."""
    return {
        "status": "ok",
        "workers_online": len(state.manager.online()),
        "models": sorted(state.manager.models),
    }
