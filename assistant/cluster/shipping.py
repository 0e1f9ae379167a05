"""Shipping one rank of a plan to its worker: the Assign message, then the shard's tensors
(each a binary frame) unless the worker holds that shard already (by content hash), and, for a
rank that decodes alone, the whole model beside it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING

from torch import Tensor

from assistant.cluster.session import WorkerSession
from edge_worker.engine.shard import decodes_alone
from edge_worker.engine.weights import ModelWeights
from edge_worker.service import protocol as P
from edge_worker.service import tensors as wire
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan

if TYPE_CHECKING:
    from assistant.cluster.coordinator import Coordinator

log = logging.getLogger(__name__)
SEND_STALL_S = 15.0  # a worker that takes no byte of a shard for this long is frozen


async def assign(
    coordinator: Coordinator,
    s: WorkerSession,
    rank: int,
    cfg: ModelConfig,
    weights: ModelWeights,
    plan: ParallelPlan,
    plan_id: str,
    peers: list[P.Peer],
    token: str,
    plain_ring: bool = False,
) -> None:
    shard_meta, shard_hash = await coordinator.shards.digest(cfg, weights, plan, rank)
    send_shard = shard_hash not in s.cached
    shard_t = (await coordinator.shards.cut(cfg, weights, plan, rank))[0] if send_shard else {}
    full_t: dict[str, Tensor] = {}
    full_meta = full_hash = None
    if decodes_alone(plan, rank):
        full_meta, full_hash = await coordinator.shards.digest(cfg, weights, None, rank)
    send_full = full_hash is not None and full_hash not in s.cached
    if send_full:
        full_t = (await coordinator.shards.cut(cfg, weights, None, rank))[0]
    # Runs may go out between the frames (the worker queues them): requests are not held
    # back for a shard on its way. The control lock keeps any other message out.
    await s.send(
        P.Assign(
            plan_id=plan_id,
            rank=rank,
            peers=peers,
            token=token,
            config=asdict(cfg),
            plan=asdict(plan),
            shard_hash=shard_hash,
            shard_meta=shard_meta,
            shard_tensors=len(shard_t),
            full_hash=full_hash,
            full_meta=full_meta,
            full_tensors=len(full_t),
            plain_ring=plain_ring,
        )
    )
    frames = [*shard_t.items(), *full_t.items()]
    total, sent = sum(t.numel() * t.element_size() for _, t in frames), 0
    try:
        for name, t in frames:
            coordinator.transfers[s.name] = (sent, total)
            await s.send_frame(wire.encode(name, t), SEND_STALL_S)
            sent += t.numel() * t.element_size()
    except BaseException:
        # Cut short (cancelled, or the link failed): the worker would read whatever comes
        # next as the missing tensors. Close its link; it reconnects by itself, in step.
        s.alive = False
        closing = asyncio.get_running_loop().create_task(s.ws.close(1011, "transfer cut short"))
        coordinator.closing.add(closing)
        closing.add_done_callback(coordinator.closing.discard)
        raise
    finally:
        coordinator.transfers.pop(s.name, None)
    log.info(
        "rank %d -> %s: shard %s (%s)",
        rank,
        s.name,
        shard_hash[:8],
        "sent" if send_shard else "cached",
    )
