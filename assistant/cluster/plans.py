"""Which deployment each served model runs on, its standbys, and when a plan may be freed.

- `current`: model -> the Deployment new requests run on.
- `standby`: model -> {worker: a Deployment on the devices left without that worker}, deployed
  ahead of time (shards loaded, ring formed), so when the worker is lost its model switches
  to the standby at once: no shard to ship and no ring to form while requests wait.
- A request holds the deployment it started on (`use` / `done`); a plan replaced meanwhile is
  retired, and released (its workers close its ring and free its shards) only when its last
  request has finished.

Pure bookkeeping, no I/O: whatever must be released is returned to the caller (the manager
sends the Release messages).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from assistant.cluster.deployment import Deployment


@dataclass
class PlanBook:
    current: dict[str, Deployment] = field(default_factory=dict)
    standby: dict[str, dict[str, Deployment]] = field(default_factory=dict)
    users: Counter[str] = field(default_factory=Counter)  # plan id -> requests running on it
    retired: dict[str, Deployment] = field(default_factory=dict)  # released once unused

    def install(self, dep: Deployment) -> list[Deployment]:
        """`dep` is now its model's plan. The plan it replaces and the standbys made for that
        plan are retired; returns those that can be released now."""
        old = self.current.get(dep.model)
        self.current[dep.model] = dep
        out = self._retire(old) if old is not None and old is not dep else []
        for spare in self.standby.pop(dep.model, {}).values():
            out += self._retire(spare)
        return out

    def add_standby(self, lost: str, dep: Deployment) -> list[Deployment]:
        """`dep` takes over its model when `lost` goes; returns what it replaces, to release."""
        old = self.standby.setdefault(dep.model, {}).get(lost)
        self.standby[dep.model][lost] = dep
        return self._retire(old) if old is not None else []

    def lost(self, worker: str) -> list[Deployment]:
        """`worker` is gone: every model whose plan used it switches to the standby made for
        this (when there is one) or has no plan until the next is made; every plan using it is
        retired. Returns those that can be released now. Idempotent."""
        out: list[Deployment] = []
        for model, dep in list(self.current.items()):
            if worker in dep.workers:
                del self.current[model]
                out += self._retire(dep)
                spare = self.standby.get(model, {}).pop(worker, None)
                if spare is not None:
                    self.current[model] = spare
        for spares in self.standby.values():
            for key, dep in list(spares.items()):
                if worker in dep.workers:
                    del spares[key]
                    out += self._retire(dep)
        return out

    def drop(self, model: str) -> list[Deployment]:
        """The model's plan broke with every worker alive (a ring that failed): no plan until
        the next is made."""
        dep = self.current.pop(model, None)
        return self._retire(dep) if dep is not None else []

    def clear(self) -> list[Deployment]:
        """Every plan and standby retired (shut-down)."""
        out = [d for m in list(self.current) for d in self.drop(m)]
        for spares in self.standby.values():
            out += [d for dep in spares.values() for d in self._retire(dep)]
        self.standby.clear()
        return out

    def use(self, dep: Deployment) -> None:
        if dep.plan_id is not None:
            self.users[dep.plan_id] += 1

    def done(self, dep: Deployment) -> list[Deployment]:
        """A request finished on `dep`: returns it if nobody uses it now and it is retired or
        was never installed (planned for a home that changed meanwhile)."""
        if dep.plan_id is None:
            return []
        self.users[dep.plan_id] -= 1
        if self.users[dep.plan_id] > 0:
            return []
        del self.users[dep.plan_id]
        retired = self.retired.pop(dep.plan_id, None)
        if retired is not None:
            return [retired]
        return [] if self._known(dep.plan_id) else [dep]  # a plan that served once only

    def _known(self, plan_id: str) -> bool:
        spares = (d for s in self.standby.values() for d in s.values())
        return any(d.plan_id == plan_id for d in [*self.current.values(), *spares])

    def held_mb(self, worker: str, need_mb: Callable[[Deployment, int], float]) -> float:
        """Memory the plans on `worker` take (current, standbys, retired not yet released):
        `need_mb(dep, rank)` for each."""
        plans = [
            *self.current.values(),
            *(d for spares in self.standby.values() for d in spares.values()),
            *self.retired.values(),
        ]
        return sum(need_mb(d, d.workers.index(worker)) for d in plans if worker in d.workers)

    def _retire(self, dep: Deployment) -> list[Deployment]:
        if dep.plan_id is None:
            return []
        if self.users[dep.plan_id] > 0:
            self.retired[dep.plan_id] = dep
            return []
        self.users.pop(dep.plan_id, None)
        return [dep]
