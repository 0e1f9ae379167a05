"""The gateway learns each device's real speed on a model from the traces of the requests it
runs, and the planner plans with it: sp's rows move off a device that ran slower than
profiled."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.planner.cost import predict, predict_decode, sp_times
from assistant.planner.planner import choose
from assistant.planner.profiles import DeviceProfile
from assistant.planner.speed import DRIFT, SETTLED, SpeedLearner, rank_layer_ms
from edge_worker.models.catalog import load_config
from edge_worker.spec.hf_config import config_from_hf
from edge_worker.spec.plan import make_plan

SMOLLM2 = config_from_hf(load_config("smollm2-135m"))
RING = [
    DeviceProfile(name=n, gflops=g, memory_mb=16384, bandwidth_mbps=1000)
    for n, g in (("desk", 50.0), ("laptop", 25.0), ("pi", 15.0))
]
SP = make_plan(SMOLLM2, "sp", [50.0, 25.0, 15.0])
TOKENS = 2048


def trace(ring: list[DeviceProfile], factors: list[float], tokens: int = TOKENS) -> Any:
    """A request's trace in which device i computed `factors[i]` times what `ring` predicts."""
    devices = {
        d.name: {"layers": [[f * rank_layer_ms(SMOLLM2, ring, SP, tokens, i), 2.0]] * 4}  # type: ignore[operator]
        for i, (d, f) in enumerate(zip(ring, factors, strict=True))
    }
    return [{"op": "prefill", "tokens": tokens, "devices": devices}, {"op": "decode"}]


def test_what_a_device_computed_over_its_prediction_is_learned_and_settles() -> None:
    learner = SpeedLearner()
    replan = [
        learner.observe_trace("smollm2", SMOLLM2, SP, RING, trace(RING, [1.0, 1.0, 1.6]))
        for _ in range(SETTLED)
    ]

    assert learner.factor("desk", "smollm2") == pytest.approx(1.0)
    assert learner.factor("pi", "smollm2") == pytest.approx(1.6)
    assert replan == [False] * (SETTLED - 1) + [True]  # re-plan once it has settled, not before


def test_a_ring_planned_with_the_learned_speed_is_not_re_planned_again() -> None:
    learner = SpeedLearner()
    slowed = [d.slower(1.6) if d.name == "pi" else d for d in RING]
    # It runs as now predicted: the factor stays relative to the measured profile.
    for _ in range(SETTLED):
        replan = learner.observe_trace("smollm2", SMOLLM2, SP, slowed, trace(slowed, [1, 1, 1]))

    assert learner.factor("pi", "smollm2") == pytest.approx(1.6)
    assert not replan
    far = 1.6 * (1 + 2 * DRIFT)  # the device slowed further: re-plan
    assert learner.observe_trace("smollm2", SMOLLM2, SP, slowed, trace(slowed, [1, 1, far]))


def test_short_prefills_overlapped_plans_and_wild_figures_teach_nothing() -> None:
    learner = SpeedLearner()
    learner.observe_trace("smollm2", SMOLLM2, SP, RING, trace(RING, [1.0, 1.0, 1.0], tokens=64))
    learner.observe_trace("smollm2", SMOLLM2, SP, RING, trace(RING, [1.0, 50.0, 1.0]))
    overlapped = make_plan(SMOLLM2, "hmp", [1.0, 1.0, 1.0], overlap=True)

    assert learner.counts == {("desk", "smollm2"): 1, ("pi", "smollm2"): 1}
    assert rank_layer_ms(SMOLLM2, RING, overlapped, TOKENS, 0) is None


def test_a_slower_profile_slows_prefill_not_decode() -> None:
    local = make_plan(SMOLLM2, "local", [1.0])
    d = RING[0]
    slow = d.slower(2.0)

    assert slow.slowdown == 2.0 and slow.slower(1.5).slowdown == 3.0
    assert rank_layer_ms(SMOLLM2, [slow], local, 512, 0) == pytest.approx(
        2 * rank_layer_ms(SMOLLM2, [d], local, 512, 0)  # type: ignore[operator]
    )
    assert (
        predict(SMOLLM2, [slow], local, 512).total_ms > predict(SMOLLM2, [d], local, 512).total_ms
    )
    assert predict_decode(SMOLLM2, [slow], local, 512).total_ms == pytest.approx(
        predict_decode(SMOLLM2, [d], local, 512).total_ms
    )


def test_sp_rows_move_off_a_device_learned_slower() -> None:
    before = choose(SMOLLM2, RING, TOKENS, decode_tokens=32)
    assert before.plan.strategy == "sp"
    slowed = [d.slower(1.6) if d.name == "laptop" else d for d in RING]
    after = choose(SMOLLM2, slowed, TOKENS, decode_tokens=32)

    def rows(choice: Any, name: str) -> int:
        names = [d.name for d in choice.ring]
        return int(choice.plan.seq_split(TOKENS)[names.index(name)])

    assert after.plan.strategy == "sp" and rows(after, "laptop") < rows(before, "laptop")
    # Balanced again: on the slowed profiles every device computes about as long.
    times = sp_times(SMOLLM2, after.ring, after.plan.seq_split(TOKENS), TOKENS)
    assert max(times) / min(times) < 1.1
