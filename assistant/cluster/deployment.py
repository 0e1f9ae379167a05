"""A model's deployed plan as the gateway keeps it: the plan, the workers it runs on (ring
order), the coordinator's plan id, and why the planner chose it (shown by GET /v1/plan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistant.planner.profiles import DeviceProfile
from edge_worker.spec.plan import ParallelPlan


@dataclass
class Deployment:
    model: str
    plan: ParallelPlan
    workers: list[str]  # ring order; empty: the gateway's in-process device
    plan_id: str | None
    why: dict[str, Any] = field(default_factory=dict)
    profiles: list[DeviceProfile] = field(default_factory=list)  # as planned (planner's choice)
    generation: int = 0  # the home's generation it was planned for (replan.py)
    standby_for: str | None = None  # made to take over when this worker is lost (refresh.py)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "strategy": self.plan.strategy,
            "overlap": self.plan.overlap,
            "decode": self.plan.decode,
            "devices": self.workers or ["gateway (in-process)"],
            "heads": list(self.plan.heads),
            "mlp_columns": list(self.plan.mlp_columns),
            "layers": list(self.plan.layers),
            "seq_weights": [round(w, 3) for w in self.plan.seq_weights],
            **self.why,
        }
