"""Generations interleaved step by step each keep their own KV cache (engine/model.py `_use`):
a short request run between the decode steps of a long one changes neither answer."""

from __future__ import annotations

import pytest
import torch

from edge_worker.engine.loader import from_hf
from edge_worker.engine.runtime import InProcessCluster
from edge_worker.errors import PlanError
from edge_worker.spec.plan import make_plan
from tests.equivalence.models import tiny_model


def greedy(cluster: InProcessCluster, prompt: list[int], n: int, session: str) -> list[int]:
    logits = cluster.prefill_last_logits(torch.tensor([prompt]), session=session)[0]
    out = [int(logits.argmax())]
    for _ in range(n - 1):
        logits = cluster.decode(torch.tensor([[out[-1]]]), session=session)[0]
        out.append(int(logits.argmax()))
    return out


@pytest.mark.parametrize("strategy", ["hmp", "tp", "local"])
def test_interleaved_generations_equal_each_alone(strategy: str) -> None:
    cfg, weights = from_hf(tiny_model("llama"))
    world = 1 if strategy == "local" else 2
    with InProcessCluster(cfg, weights, make_plan(cfg, strategy, [1.0] * world)) as cluster:  # type: ignore[arg-type]
        long_alone = greedy(cluster, [5, 17, 3, 9, 41], 12, "long")
        short_alone = greedy(cluster, [7, 7, 2], 4, "short")

        logits = cluster.prefill_last_logits(torch.tensor([[5, 17, 3, 9, 41]]), session="a")[0]
        long_steps = [int(logits.argmax())]
        short = []
        for step in range(11):
            if step == 3:  # a short request arrives mid-answer and runs between two steps
                short = greedy(cluster, [7, 7, 2], 4, "b")
            logits = cluster.decode(torch.tensor([[long_steps[-1]]]), session="a")[0]
            long_steps.append(int(logits.argmax()))

    assert long_steps == long_alone
    assert short == short_alone


def test_a_decode_step_for_an_unknown_session_is_refused() -> None:
    cfg, weights = from_hf(tiny_model("llama"))
    with InProcessCluster(cfg, weights, make_plan(cfg, "local", [1.0])) as cluster:
        cluster.prefill_last_logits(torch.tensor([[1, 2, 3]]), session="known")

        with pytest.raises(PlanError, match="without its prefill"):
            cluster.decode(torch.tensor([[4]]), session="unknown")
