"""What the planner learns from the traces of the requests the gateway runs, per (device,
model): the part `calibrate.OverlapLearner` (what overlap costs a device) and
`speed.SpeedLearner` (how fast a device really is) share. A subclass says what one prefill
shows of a device (`observed`) and which figure of the profile a plan was made with the
factor stands for (`planned`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.planner.profiles import DeviceProfile
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan


@dataclass(frozen=True)
class Prefill:
    """One prefill of `tokens` on `plan` over `ring` (the profiles it was planned with)."""

    cfg: ModelConfig
    plan: ParallelPlan
    ring: Sequence[DeviceProfile]
    tokens: int


class TraceLearner(ABC):
    """Per (device, model), a moving average of observed factors (`weight` for the newest).
    After `settled` prefills, a factor `drift` (a share) off the one planned with re-plans."""

    settled: int
    drift: float

    def __init__(self, weight: float = 0.3) -> None:
        self.weight = weight
        self.factors: dict[tuple[str, str], float] = {}
        self.counts: dict[tuple[str, str], int] = {}

    @abstractmethod
    def observed(self, p: Prefill, rank: int, per_layer: Sequence[float]) -> float | None:
        """Device `rank`'s factor in prefill `p` (its compute ms per layer), or None when
        this prefill does not tell."""

    @abstractmethod
    def planned(self, d: DeviceProfile) -> float:
        """The factor profile `d` was planned with."""

    def observe(
        self,
        model: str,
        cfg: ModelConfig,
        plan: ParallelPlan,
        ring: Sequence[DeviceProfile],
        tokens: int,
        layers: Sequence[Sequence[float]],
    ) -> None:
        """One prefill on `plan` over `ring` (the profiles it was planned with, ring order):
        `layers[rank]` is that device's compute ms per layer."""
        prefill = Prefill(cfg, plan, ring, tokens)
        for rank, (d, per_layer) in enumerate(zip(ring, layers, strict=True)):
            factor = self.observed(prefill, rank, per_layer) if per_layer else None
            if factor is None:
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
        device's learned factor, over `settled` prefills, is `drift` off the one `ring` was
        planned with (then re-plan with it)."""
        for step in trace:
            devices = step.get("devices", {})
            layers = [devices.get(d.name, {}).get("layers") for d in ring]
            if step.get("op") == "prefill" and all(layers):
                per_layer = [[compute for compute, _ in device] for device in layers]
                self.observe(model, cfg, plan, ring, int(step.get("tokens", 0)), per_layer)
        learned = [(self.factor(d.name, model, self.settled), self.planned(d)) for d in ring]
        return any(f is not None and abs(f - used) > self.drift * used for f, used in learned)

    def factor(self, device: str, model: str, min_count: int = 1) -> float | None:
        """The learned factor, once `min_count` prefills have been seen; else None."""
        key = (device, model)
        return self.factors[key] if self.counts.get(key, 0) >= min_count else None
