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
from typing import Any

from assistant.planner.cost import attn_ms, conn_ms, layer_ms, mlp_ms, sp_times
from assistant.planner.profiles import DeviceProfile
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, kv_heads

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
    heads, cols = plan.heads[rank], plan.mlp_columns[rank]
    kv = kv_heads(cfg, plan)[rank]
    own = tokens if s == "tp" else rows[rank]  # hmp: the connective blocks on its own rows
    return (
        attn_ms(cfg, d, tokens, heads, tokens, kv)
        + mlp_ms(cfg, d, tokens, cols)
        + 2 * conn_ms(cfg, d, own)
    )


class SpeedLearner:
    """Per (device, model), a moving average of observed speed factors (`weight` for the
    newest)."""

    def __init__(self, weight: float = 0.3) -> None:
        self.weight = weight
        self.factors: dict[tuple[str, str], float] = {}
        self.counts: dict[tuple[str, str], int] = {}

    def observe(
        self,
        model: str,
        cfg: ModelConfig,
        plan: ParallelPlan,
        ring: Sequence[DeviceProfile],
        tokens: int,
        layers: Sequence[Sequence[float]],
    ) -> None:
        """One prefill of `tokens` on `plan` over `ring` (the profiles it was planned with,
        ring order): `layers[rank]` is that device's compute ms per layer. A factor is
        relative to the measured profile: one the ring was already slowed by (`slowdown`) is
        multiplied back in."""
        if tokens < MIN_TOKENS:
            return
        for rank, (d, per_layer) in enumerate(zip(ring, layers, strict=True)):
            predicted = rank_layer_ms(cfg, ring, plan, tokens, rank)
            if not predicted or not per_layer:
                continue
            factor = statistics.median(per_layer) / predicted * d.slowdown
            if not BOUNDS[0] <= factor <= BOUNDS[1]:
                continue
            key = (d.name, model)
            old = self.factors.get(key)
            self.factors[key] = factor if old is None else old + self.weight * (factor - old)
            self.counts[key] = self.counts.get(key, 0) + 1

    def observe_trace(
        self,
        model: str,
        cfg: ModelConfig,
        plan: ParallelPlan,
        ring: Sequence[DeviceProfile],
        trace: Sequence[dict[str, Any]],
    ) -> bool:
        """Every prefill step of a request's trace (`gate.StepRunner.trace`); True when a
        device's learned factor, over `SETTLED` prefills, is `DRIFT` off the one `ring` was
        planned with (then re-plan with it)."""
        for step in trace:
            devices = step.get("devices", {})
            layers = [devices.get(d.name, {}).get("layers") for d in ring]
            if step.get("op") == "prefill" and all(layers):
                per_layer = [[compute for compute, _ in device] for device in layers]
                self.observe(model, cfg, plan, ring, int(step.get("tokens", 0)), per_layer)
        learned = [(self.factor(d.name, model, SETTLED), d.slowdown) for d in ring]
        return any(f is not None and abs(f - used) > DRIFT * used for f, used in learned)

    def factor(self, device: str, model: str, min_count: int = 1) -> float | None:
        """The learned factor, once `min_count` prefills have been seen; else None."""
        key = (device, model)
        return self.factors[key] if self.counts.get(key, 0) >= min_count else None
