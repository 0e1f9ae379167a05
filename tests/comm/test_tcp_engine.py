"""The engine end to end over a real TCP ring (3 ranks on threads, 127.0.0.1), against
Hugging Face and against the same plan on the in-process group."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import torch
from torch import Tensor

from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.engine.loader import from_hf
from edge_worker.engine.model import RankModel, RankOutput
from edge_worker.engine.runtime import InProcessCluster, Output, assemble
from edge_worker.engine.shard import decodes_alone, shard_for_rank
from edge_worker.engine.weights import ModelWeights
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, make_plan
from tests.equivalence.models import assert_within_tolerance, reference, tiny_model

SEQ = 37
PLANS: list[tuple[str, list[float], dict[str, Any]]] = [
    ("hmp", [1.0, 2.0, 3.0], {}),
    ("hmp", [1.0, 2.0, 3.0], {"overlap": True}),  # the streaming forms
    ("tp", [1.0, 1.0, 1.0], {}),
    ("sp", [1.0, 2.0, 3.0], {}),
    ("pp", [2.0, 1.0, 1.0], {}),
]


class TcpRingCluster:
    """`plan.world_size` ranks on threads of this process, talking over a loopback TCP ring."""

    def __init__(self, cfg: ModelConfig, weights: ModelWeights, plan: ParallelPlan) -> None:
        self.comms = TcpRingCommunicator.loopback_ring(plan.world_size, timeout=30)
        self.ranks = [
            RankModel(
                cfg,
                shard_for_rank(cfg, weights, plan, r),
                plan,
                self.comms[r],
                full=weights if decodes_alone(plan, r) else None,
            )
            for r in range(plan.world_size)
        ]
        self._pool = ThreadPoolExecutor(plan.world_size, thread_name_prefix="tcp-rank")

    def close(self) -> None:
        for c in self.comms:
            c.close()
        self._pool.shutdown(wait=True)

    def _run(self, call: str, *args: object, **kwargs: object) -> list[RankOutput | None]:
        futures = [self._pool.submit(getattr(r, call), *args, **kwargs) for r in self.ranks]
        try:
            return [f.result(60) for f in futures]
        except BaseException:
            for c in self.comms:  # release ranks still waiting in a collective
                c.close()
            raise

    def prefill(self, ids: Tensor, want: str) -> Output:
        return assemble(self._run("prefill", ids, want=want))

    def decode(self, token_ids: Tensor) -> Tensor:
        out = assemble(self._run("decode", token_ids))
        assert out.logits is not None
        return out.logits[:, -1]


def ids_for(seed: int) -> Tensor:
    return torch.randint(3, 96, (1, SEQ), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["llama", "bert"])
@pytest.mark.parametrize(("strategy", "weights", "options"), PLANS, ids=str)
def test_prefill_over_tcp_matches_hugging_face(
    family: str, strategy: str, weights: list[float], options: dict[str, Any]
) -> None:
    model = tiny_model(family)
    cfg, full = from_hf(model)
    plan = make_plan(cfg, strategy, weights, **options)  # type: ignore[arg-type]
    ids = ids_for(0)
    cluster = TcpRingCluster(cfg, full, plan)

    try:
        out = cluster.prefill(ids, want="logits" if cfg.causal else "hidden")
    finally:
        cluster.close()

    got = out.logits if cfg.causal else out.hidden
    assert got is not None
    assert_within_tolerance(got, reference(model, ids))


@pytest.mark.parametrize(("strategy", "weights", "options"), [PLANS[0], PLANS[4]], ids=str)
def test_decode_steps_over_tcp_match_the_in_process_group(
    strategy: str, weights: list[float], options: dict[str, Any]
) -> None:
    model = tiny_model("llama")
    cfg, full = from_hf(model)
    plan = make_plan(cfg, strategy, weights, **options)  # type: ignore[arg-type]
    ids, steps = ids_for(1), [[5], [17], [42]]
    with InProcessCluster(cfg, full, plan) as local:
        want = [local.prefill_last_logits(ids)] + [local.decode(torch.tensor([s])) for s in steps]
    cluster = TcpRingCluster(cfg, full, plan)

    try:
        first = cluster.prefill(ids, want="last_logits").logits
        assert first is not None
        got = [first[:, -1]] + [cluster.decode(torch.tensor([s])) for s in steps]
    finally:
        cluster.close()

    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=0)
