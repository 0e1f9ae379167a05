"""What the gateway learns from the traces of the requests it runs, for the planner's next
plans: each device's overlap cost (planner/calibrate.py) and its real speed on each model
(planner/speed.py). Only plans the planner made (GALAXY_STRATEGY=auto) teach it: they carry
the profiles they were planned with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistant.cluster.deployment import Deployment
from assistant.planner.calibrate import SETTLED, OverlapLearner
from assistant.planner.profiles import DeviceProfile
from assistant.planner.speed import SETTLED as SPEED_SETTLED
from assistant.planner.speed import SpeedLearner
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan


class Learning:
    def __init__(self, settled: int | None = None) -> None:
        """`settled`: prefills seen before a learned figure is applied (default: each
        learner's own; the bench, whose emulated devices are steady, applies one)."""
        self.overlap = OverlapLearner()
        self.speed = SpeedLearner()
        self.settled = settled

    def observe(self, dep: Deployment, cfg: ModelConfig, trace: list[dict[str, Any]]) -> str:
        """Learn from one request's trace on `dep` (a plan the planner made: it carries the
        profiles); a reason to re-plan when a device has settled far from what its plan
        assumed (else "")."""
        if dep.plan.overlap:
            if self.overlap.observe_trace(dep.model, cfg, dep.plan, dep.profiles, trace):
                return f"{dep.model}: overlap cost re-learned"
        elif self.speed.observe_trace(dep.model, cfg, dep.plan, dep.profiles, trace):
            return f"{dep.model}: device speeds re-learned"
        return ""

    def observe_prefill(
        self,
        model: str,
        cfg: ModelConfig,
        plan: ParallelPlan,
        ring: Sequence[DeviceProfile],
        tokens: int,
        layers: Sequence[Sequence[float]],
    ) -> None:
        """Learn from one prefill's compute ms per layer on each device of `ring` (the
        profiles `plan` was made with): an overlapped plan teaches overlap costs, any other
        device speeds, as `observe` does."""
        learner = self.overlap if plan.overlap else self.speed
        learner.observe(model, cfg, plan, ring, tokens, layers)

    def applied(self, profile: DeviceProfile, model: str) -> DeviceProfile:
        """`profile` (as measured, the overlap prior) with what has been learned of it. Both
        factors are over the measured profile; a profile slowed by a learned speed prices
        its tiles that much slower already, so the overlap factor applied is the learned
        one over that speed (else a device learned both ways pays its speed error twice)."""
        overlap = self.overlap.factor(profile.name, model, self.settled or SETTLED)
        speed = self.speed.factor(profile.name, model, self.settled or SPEED_SETTLED) or 1.0
        if overlap is not None:
            profile = profile.model_copy(update={"overlap_compute": overlap / speed})
        return profile.slower(speed)
