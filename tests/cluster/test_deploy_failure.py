"""A deployment that fails on one rank leaves nothing running on the others' links.

The gateway's control conversations (deploy, profile, probe) take turns on each worker's link:
the next one writes its Assign and frames there, and reads that worker's replies. So when one
rank of a deployment fails (its worker lost), nothing of the deployment may go on with the
surviving ranks:
- a shipment still on its way must end first: its frames would go out beside the next
  deployment's Assign (the re-plan after the loss), which the worker would read as a
  misplaced message in the middle of a shard;
- a wait for a survivor's reply must stop: it would take the next deployment's replies from
  that worker's inbox and drop them, and the re-plan would wait out its deadline (a request
  in the gateway's failover test did, on a slower machine).

Two in-process workers; the first deployment's rank 1 fails ("lost"); the re-plan on w0 alone
then deploys and answers exactly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch

from assistant.cluster import coordinator as coordinator_module
from assistant.cluster.coordinator import Coordinator
from assistant.cluster.remote import RemoteCluster
from edge_worker.engine.loader import from_hf
from edge_worker.engine.weights import ModelWeights
from edge_worker.errors import WorkerLost
from edge_worker.service import protocol as P
from edge_worker.service.worker import Worker
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import make_plan
from tests.cluster.conftest import in_process_workers
from tests.equivalence.models import assert_within_tolerance, reference, tiny_model


def test_a_shipment_still_on_its_way_ends_before_the_failure_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1's shipment fails at once; rank 0's starts 0.5 s later (a big shard)."""
    original = coordinator_module.assign
    shipped: list[int] = []

    async def rank_1_lost(coordinator: Coordinator, s: Any, rank: int, *args: Any) -> None:
        if shipped:  # the re-plan ships as usual
            await original(coordinator, s, rank, *args)
            return
        if rank == 1:
            raise WorkerLost(s.name, "control link closed")
        await asyncio.sleep(0.5)
        await original(coordinator, s, rank, *args)
        shipped.append(rank)

    monkeypatch.setattr(coordinator_module, "assign", rank_1_lost)

    def after_failure() -> None:
        assert shipped == [0]  # reported once it was over, not cut off (w0's link stays up)

    _fail_then_replan(tmp_path, after_failure)


def test_a_wait_for_a_survivors_reply_stops_with_the_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """w1 never joins the first plan's ring (it died as the ring formed) and is found lost
    0.5 s later. w0's ring is called off by the Release, so no Ready comes from it: a wait
    for it left running would take the re-plan's Loaded and Ready."""
    first_plan: list[str] = []
    original_expect, original_connect = Coordinator._expect, Worker._connect

    async def lost_forming(self: Coordinator, s: Any, kind: type, plan_id: str) -> Any:
        first_plan[:] = first_plan or [plan_id]
        if (kind, s.name, plan_id) == (P.Ready, "w1", first_plan[0]):
            await asyncio.sleep(0.5)
            raise WorkerLost("w1", "control link closed")
        return await original_expect(self, s, kind, plan_id)

    async def dead_w1(self: Worker, link: Any, msg: P.Connect) -> None:
        if (self.name, msg.plan_id) != ("w1", first_plan[0]):
            await original_connect(self, link, msg)

    monkeypatch.setattr(Coordinator, "_expect", lost_forming)
    monkeypatch.setattr(Worker, "_connect", dead_w1)
    _fail_then_replan(tmp_path, lambda: None)


def _fail_then_replan(tmp_path: Path, after_failure: Any) -> None:
    model = tiny_model("llama")
    cfg, weights = from_hf(model)
    ids = torch.tensor([[5, 17, 3, 9, 41, 2]])
    with in_process_workers(tmp_path, 2, timeout=15) as cluster:
        with pytest.raises(WorkerLost):
            _deploy(cluster, cfg, weights, "hmp", ["w0", "w1"])
        after_failure()
        _deploy(cluster, cfg, weights, "local", ["w0"])
        out = cluster.prefill(ids, want="logits")
    assert out.logits is not None
    assert_within_tolerance(out.logits, reference(model, ids))


def _deploy(
    cluster: RemoteCluster, cfg: ModelConfig, w: ModelWeights, strategy: Any, names: list[str]
) -> None:
    cluster.deploy(cfg, w, make_plan(cfg, strategy, [1.0] * len(names)), names)
