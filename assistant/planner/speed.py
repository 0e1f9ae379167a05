"""Learning each device's real speed on a model, from the requests it runs.

A profile is taken once, in seconds, often on a busy machine; it misjudges devices, and not
all alike (smollm2-2048-e in bench/RESULTS.md: sp's balanced rows ran 0.87, 0.80 and 0.68 of
their predicted compute on the three devices, so the rows were not balanced after all). After
every prefill on a plan without overlap, each device's trace gives its compute per layer (wall
time less its wait on the ring, `gate.StepRunner.trace`); over the compute the cost model
predicted for that device's share of the plan, that is the device's speed factor for this
request (>1: slower than profiled):

    learner = SpeedLearner()
    learner.observe_trace("smollm2-135m", cfg, plan, profiles, trace)  # True: re-plan
    learner.factor("kitchen-pi", "smollm2-135m")    # a moving average, or None
    profile.slower(factor)                          # what the planner then plans with

Overlapped plans are left to planner/calibrate.py, whose factor prices the tiles.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from assistant.planner.cost import layer_ms, rank_compute_ms, sp_times
from assistant.planner.learner import Prefill, TraceLearner
from assistant.planner.profiles import DeviceProfile
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan

MIN_TOKENS = 128  # shorter prefills are mostly fixed costs per operation
BOUNDS = (0.25, 8.0)  # a factor outside is a measurement gone wrong (a stalled device)
SETTLED, DRIFT = 3, 0.15  # prefills before a learned factor counts; how far off re-plans


def rank_layer_ms(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, tokens: int, rank: int
) -> float | None:
    """The compute per layer the cost model predicts for device `rank` in a prefill of
    `tokens` under `plan` (as cost.predict prices it, without the ring's waits); None for the
    plans this module does not learn from (overlapped hmp)."""
    d, s = ring[rank], plan.strategy
    if s in ("local", "pp"):
        return layer_ms(cfg, d, tokens)
    rows = plan.seq_split(tokens)
    if s == "sp":
        return sp_times(cfg, ring, rows, tokens)[rank]
    if plan.overlap and len(ring) > 1:
        return None
    return rank_compute_ms(cfg, ring, plan, tokens)[rank]


class SpeedLearner(TraceLearner):
    """Each device's speed factor on each model, from prefills on plans without overlap."""

    settled, drift = SETTLED, DRIFT

    def observed(self, p: Prefill, rank: int, per_layer: Sequence[float]) -> float | None:
        """Measured over predicted compute; a ring already slowed by a factor (`slowdown`)
        has it multiplied back in, so the factor stays relative to the measured profile."""
        if p.tokens < MIN_TOKENS:
            return None
        predicted = rank_layer_ms(p.cfg, p.ring, p.plan, p.tokens, rank)
        if not predicted:
            return None
        factor = statistics.median(per_layer) / predicted * p.ring[rank].slowdown
        return factor if BOUNDS[0] <= factor <= BOUNDS[1] else None

    def planned(self, d: DeviceProfile) -> float:
        return d.slowdown
