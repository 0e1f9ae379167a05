"""The active plans and the request log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from assistant.api.deps import Authorized, StateDep
from assistant.cluster.manager import PLAN_DECODE, PLAN_SEQ

router = APIRouter(tags=["cluster"])


@router.get("/plan")
async def active_plans(state: StateDep, _: Authorized) -> dict[str, Any]:
    """The plan each served model runs on now; the background re-plan after a worker joined
    or left (pending, running or idle, and how the last one went); the shards on their way to
    workers (MB sent of MB). (On the event loop, so the plans are not read while the loop
    changes them.)"""
    return {
        # what the predictions are for: a prompt of this many tokens (and decode steps)
        "plan_seq_len": PLAN_SEQ,
        "plan_decode_tokens": PLAN_DECODE,
        "workers_online": state.manager.online(),
        "plans": {
            m: {
                **d.describe(),
                "causal": state.manager.models[m].cfg.causal,  # decodes: the plan's `decode`
                "seq_rows": d.plan.seq_split(PLAN_SEQ),  # rows of a PLAN_SEQ-token prompt
            }
            for m, d in state.manager.deployments.items()
        },
        "replan": dict(state.manager.replan_status),
        "transfers": {
            name: {"sent_mb": round(sent / 2**20, 1), "total_mb": round(total / 2**20, 1)}
            for name, (sent, total) in state.coordinator.transfers.items()
        },
    }


@router.get("/requests")
def request_log(
    state: StateDep, _: Authorized, limit: int = Query(50, ge=1, le=500)
) -> list[dict[str, Any]]:
    """Recent requests with their timings, failovers and plans, newest first."""
    return state.store.requests(limit)
