"""A deployment ships every shard before any ring forms: a shard slower to arrive than a ring's
deadline (a big model over a slow link) no longer makes its peers give up on the ring.

Two in-process workers with a 2 s ring deadline; the coordinator's shipment to rank 1 is held
back 4 s (as a 1.3 GB shard over 100 Mbit/s is, for minutes). Rank 0 has its shard at once:
had it joined the ring then, it would have waited out its deadline for rank 1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch

from assistant.cluster import coordinator as coordinator_module
from assistant.cluster.coordinator import Coordinator
from edge_worker.engine.loader import from_hf
from edge_worker.spec.plan import make_plan
from tests.cluster.conftest import in_process_workers
from tests.equivalence.models import assert_within_tolerance, reference, tiny_model

RING_DEADLINE_S = 2.0
SHARD_DELAY_S = 4.0


def test_a_shard_slower_than_the_ring_deadline_still_deploys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = coordinator_module.assign

    async def slow_for_rank_1(coordinator: Coordinator, s: Any, rank: int, *args: Any) -> None:
        if rank == 1:
            await asyncio.sleep(SHARD_DELAY_S)
        await original(coordinator, s, rank, *args)

    monkeypatch.setattr(coordinator_module, "assign", slow_for_rank_1)
    model = tiny_model("llama")
    cfg, weights = from_hf(model)
    ids = torch.tensor([[5, 17, 3, 9, 41, 2]])
    with in_process_workers(tmp_path, 2, ring_timeout=RING_DEADLINE_S) as cluster:
        cluster.deploy(cfg, weights, make_plan(cfg, "hmp", [1.0, 1.0]), ["w0", "w1"])
        out = cluster.prefill(ids, want="logits")
    assert out.logits is not None
    assert_within_tolerance(out.logits, reference(model, ids))
