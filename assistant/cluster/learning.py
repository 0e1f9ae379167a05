"""What the gateway learns from the traces of the requests it runs, for the planner's next
plans: each device's overlap cost (planner/calibrate.py) and its real speed on each model
(planner/speed.py). Only plans the planner made (GALAXY_STRATEGY=auto) teach it: they carry
the profiles they were planned with."""

from __future__ import annotations

from typing import Any

from assistant.cluster.deployment import Deployment
from assistant.planner.calibrate import SETTLED, OverlapLearner
from assistant.planner.profiles import DeviceProfile
from assistant.planner.speed import SETTLED as SPEED_SETTLED
from assistant.planner.speed import SpeedLearner
from edge_worker.spec.config import ModelConfig


class Learning:
    def __init__(self) -> None:
        self.overlap = OverlapLearner()
        self.speed = SpeedLearner()

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

    def applied(self, profile: DeviceProfile, model: str) -> DeviceProfile:
        """`profile` (as measured, the overlap prior) with what has been learned of it."""
        overlap = self.overlap.factor(profile.name, model, SETTLED)
        if overlap is not None:
            profile = profile.model_copy(update={"overlap_compute": overlap})
        return profile.slower(self.speed.factor(profile.name, model, SPEED_SETTLED) or 1.0)
