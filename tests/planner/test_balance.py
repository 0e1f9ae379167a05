"""hmp shares balanced phase by phase on the cost model (assistant/planner/balance.py)."""

from __future__ import annotations

import pytest

from assistant.planner.balance import balanced, phase_compute_ms
from assistant.planner.cost import predict
from assistant.planner.planner import candidates, choose
from assistant.planner.profiles import DeviceProfile
from edge_worker.models.catalog import load_config
from edge_worker.spec.hf_config import config_from_hf
from edge_worker.spec.plan import make_plan, validate

BERT = config_from_hf(load_config("bert-large-shape"))  # 16 heads, 4096 columns
QWEN = config_from_hf(load_config("qwen2.5-0.5b-shape"))  # 14 heads in 2 KV groups


def dev(name: str, gflops: float, overlap: float = 1.15) -> DeviceProfile:
    return DeviceProfile(
        name=name,
        gflops=gflops,
        memory_mb=16384,
        bandwidth_mbps=1000,
        latency_ms=0.3,
        overlap_compute=overlap,
    )


def test_a_device_learned_slow_at_overlap_gets_less_and_the_plan_is_faster() -> None:
    """The reference home after the gateway learned what overlap costs each device
    (bench/RESULTS.md, "12-07, midnight": 1.22, 1.37 and 1.53 in reference-22-balanced)."""
    home = [dev("desk", 100, 1.22), dev("laptop", 50, 1.37), dev("pi", 30, 1.53)]
    by_speed = make_plan(BERT, "hmp", [d.gflops for d in home], overlap=True)

    plan = balanced(BERT, home, by_speed, 512, by_groups=True)

    assert plan.heads[2] < by_speed.heads[2] and plan.mlp_columns[2] < by_speed.mlp_columns[2]
    assert sum(plan.heads) == 16 and sum(plan.mlp_columns) == 4096
    assert plan.seq_weights == by_speed.seq_weights
    validate(BERT, plan)
    slow = predict(BERT, home, by_speed, 512).total_ms
    assert predict(BERT, home, plan, 512).total_ms < 0.9 * slow
    choice = choose(BERT, home, 512, labels=("hmp+overlap",))
    assert choice.plan == plan


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize(
    "speeds", [(100, 50, 30), (100, 100, 100), (80, 20), (60, 55, 30, 10)], ids=str
)
def test_no_phase_gets_slower(speeds: tuple[float, ...], overlap: bool) -> None:
    home = [dev(f"d{i}", g) for i, g in enumerate(speeds)]
    by_speed = make_plan(BERT, "hmp", list(map(float, speeds)), overlap=overlap)

    plan = balanced(BERT, home, by_speed, 512, by_groups=True)

    for before, after in zip(
        phase_compute_ms(BERT, home, by_speed, 512),
        phase_compute_ms(BERT, home, plan, 512),
        strict=True,
    ):
        assert max(after) <= max(before)
    if len(set(speeds)) == 1:
        assert plan == by_speed  # nothing to gain: nothing moves


def test_query_heads_move_one_at_a_time_with_their_kv_replicated() -> None:
    """A GQA model split by single query heads: the balanced plan stays valid (a group's
    K/V projection replicated where its heads land) and is offered beside Galaxy's."""
    home = [dev("desk", 50), dev("laptop", 25), dev("pi", 15, overlap=2.0)]

    plans = candidates(QWEN, "hmp+overlap", home, 512, "float32")

    assert len(plans) >= 2
    for plan in plans:
        validate(QWEN, plan)
        assert sum(plan.heads) == QWEN.n_heads
