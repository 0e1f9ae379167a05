"""The gateway learns what overlap costs each device from the traces of the requests it runs,
and the planner costs overlap with it."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.cluster.learning import Learning
from assistant.planner.calibrate import SETTLED, OverlapLearner, observed_factor
from assistant.planner.cost import (
    conn_ms,
    core_ms,
    mlp_ms,
    out_ms,
    predict,
    qkv_ms,
    ring_cpu_ms,
    tile_ms,
)
from assistant.planner.profiles import OVERLAP_COMPUTE, DeviceProfile
from edge_worker.models.catalog import load_config
from edge_worker.spec.hf_config import config_from_hf
from edge_worker.spec.plan import kv_heads, make_plan

BERT = config_from_hf(load_config("bert-large-shape"))
RING = [
    DeviceProfile(name=n, gflops=g, memory_mb=16384, bandwidth_mbps=1000)
    for n, g in (("desk", 50.0), ("laptop", 25.0), ("pi", 15.0))
]
PLAN = make_plan(BERT, "hmp", [50.0, 25.0, 15.0], overlap=True)
TOKENS = 512


def layer_ms(rank: int, factor: float) -> float:
    """What device `rank` computes in one overlapped layer if its tiles cost `factor` times
    their GEMMs (the cost model's pricing of the untiled rest)."""
    d, rows = RING[rank], PLAN.seq_split(TOKENS)
    heads, cols, kv = PLAN.heads[rank], PLAN.mlp_columns[rank], kv_heads(BERT, PLAN)[rank]
    tiles = sum(
        qkv_ms(BERT, d, r, heads, kv) + out_ms(BERT, d, r, heads) + mlp_ms(BERT, d, r, cols)
        for r in rows
    )
    return (
        factor * tiles + core_ms(BERT, d, TOKENS, heads, TOKENS) + 2 * conn_ms(BERT, d, rows[rank])
    )


def trace(factors: list[float], tokens: int = TOKENS) -> list[dict[str, Any]]:
    layers = {d.name: [[layer_ms(i, factors[i]), 3.0]] * 4 for i, d in enumerate(RING)}
    return [
        {
            "op": "prefill",
            "tokens": tokens,
            "devices": {n: {"layers": v} for n, v in layers.items()},
        },
        {"op": "decode", "tokens": 1, "devices": {d.name: {} for d in RING}},
    ]


def test_a_device_s_factor_is_read_back_from_its_per_layer_compute() -> None:
    for rank, factor in ((0, 1.1), (2, 1.6)):
        got = observed_factor(BERT, RING[rank], PLAN, rank, TOKENS, [layer_ms(rank, factor)] * 3)
        assert got == pytest.approx(factor, rel=1e-9)
    assert observed_factor(BERT, RING[0], PLAN, 0, 16, [1.0]) is None  # too short to tell
    assert observed_factor(BERT, RING[0], PLAN, 0, TOKENS, [1e6]) is None  # a stalled device


def test_a_factor_far_from_the_planned_one_asks_for_a_re_plan_once_settled() -> None:
    learner = OverlapLearner()
    slow_pi = [OVERLAP_COMPUTE, OVERLAP_COMPUTE, 1.9]

    asked = [
        learner.observe_trace("bert", BERT, PLAN, RING, trace(slow_pi)) for _ in range(SETTLED)
    ]

    assert asked == [False] * (SETTLED - 1) + [True]
    assert learner.factor("pi", "bert", SETTLED) == pytest.approx(1.9)
    assert learner.factor("desk", "bert", SETTLED) == pytest.approx(OVERLAP_COMPUTE)
    # Planned with what it learned, the same traces no longer ask for anything.
    learned = [
        d.model_copy(update={"overlap_compute": learner.factor(d.name, "bert")}) for d in RING
    ]
    assert not learner.observe_trace("bert", BERT, PLAN, learned, trace(slow_pi))
    # Its cost is now the planner's: overlap costs the pi more.
    assert (
        predict(BERT, learned, PLAN, TOKENS).total_ms > predict(BERT, RING, PLAN, TOKENS).total_ms
    )


def test_plans_without_overlap_teach_nothing() -> None:
    learner = OverlapLearner()
    plain = make_plan(BERT, "hmp", [50.0, 25.0, 15.0])

    assert not learner.observe_trace("bert", BERT, plain, RING, trace([2.0, 2.0, 2.0]))
    assert learner.factors == {}


def test_where_the_ring_shares_the_cpu_its_cpu_work_is_not_read_as_overlap_cost() -> None:
    shared = RING[2].model_copy(update={"ring_cpu_ms_per_mb": 30.0})
    rows, h = PLAN.seq_split(TOKENS), BERT.hidden_size
    chunk = [r * h * 4 for r in rows]
    stolen = ring_cpu_ms(shared, 2, chunk, chunk)
    # Two all-gathers bring every chunk but its own; two reduce-scatters every partial but the
    # one that starts here (chunk 1's).
    assert stolen == pytest.approx(30.0 * 2 * (2 * sum(chunk) - chunk[2] - chunk[1]) / 1e6)
    got = observed_factor(BERT, shared, PLAN, 2, TOKENS, [layer_ms(2, 1.3) + stolen] * 3)
    assert got == pytest.approx(1.3, rel=1e-9)


def test_one_prefill_teaches_the_bench_what_it_teaches_the_gateway_in_three() -> None:
    """The bench's "planned, learned" (`Learning(settled=1)`): an overlapped prefill teaches
    each device's overlap cost and leaves its speed alone; the gateway waits for SETTLED."""
    layers = [[layer_ms(i, f)] * 4 for i, f in enumerate([1.1, 1.2, 1.9])]
    bench, gateway = Learning(settled=1), Learning()
    for learning in (bench, gateway):
        learning.observe_prefill("bert", BERT, PLAN, RING, TOKENS, layers)

    pi = bench.applied(RING[2], "bert")
    assert pi.overlap_compute == pytest.approx(1.9) and pi.slowdown == 1.0
    assert gateway.applied(RING[2], "bert") == RING[2]
    plain = make_plan(BERT, "hmp", [50.0, 25.0, 15.0])
    bench.observe_prefill("bert", BERT, plain, RING, TOKENS, layers)  # teaches speeds
    assert bench.applied(RING[2], "bert").slowdown != 1.0


def test_a_device_learned_both_ways_pays_its_speed_error_once() -> None:
    """pi's tiles cost 1.9x their GEMMs as profiled (its overlap factor, learned first), and
    a plain plan then shows it 1.5x slower than profiled: planned with both, its tiles are
    priced at what they measured, not 1.5 x 1.9; and an overlap factor learned on the slowed
    profile reads the same."""
    layers = [[layer_ms(i, f)] * 4 for i, f in enumerate([1.1, 1.2, 1.9])]
    learning = Learning(settled=1)
    learning.observe_prefill("bert", BERT, PLAN, RING, TOKENS, layers)
    learning.speed.factors[("pi", "bert")], learning.speed.counts[("pi", "bert")] = 1.5, 1

    pi = learning.applied(RING[2], "bert")

    rows = PLAN.seq_split(TOKENS)
    measured = sum(map(sum, tile_ms(BERT, RING[2], PLAN, 2, rows))) * 1.9
    priced = sum(map(sum, tile_ms(BERT, pi, PLAN, 2, rows))) * pi.overlap_compute
    assert pi.slowdown == 1.5 and priced == pytest.approx(measured)
    again = OverlapLearner()  # the same tiles, seen through the slowed profile
    slowed = [RING[0], RING[1], pi]
    again.observe("bert", BERT, PLAN, slowed, TOKENS, [[layer_ms(i, 1.0)] * 4 for i in (0, 1)]
                  + [[priced + core_ms(BERT, pi, TOKENS, PLAN.heads[2], TOKENS)
                      + 2 * conn_ms(BERT, pi, rows[2])] * 4])  # fmt: skip
    assert again.factor("pi", "bert") == pytest.approx(1.9)
