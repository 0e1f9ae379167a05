"""The gateway's cluster: served models, which plan each runs on, requests with failover.

- Workers join and leave through the coordinator; every change (and, when the planner chooses
  the strategy, a measured link that moved by more than 30%: linkwatch.py) makes the current
  plans stale, and `replan.py` re-plans every served model in the background and ships its
  shards beside the requests, which keep running on the plans they have until the new ones
  are up (plans.py: a replaced plan is released when its last request finishes). When the
  background re-plan fails, the next request re-plans.
- Standbys (`standby`): for every worker of a model's plan, a plan on the workers left without
  it is deployed ahead, where memory allows. When that worker is lost, the model switches to
  it at once, and the background makes the next standbys.
- A worker is profiled for every served model when it registers, and again on demand.
- Requests share the cluster step by step (gate.py): one prefill or decode step at a time on
  the ring, first come first served, so a short request runs between the decode steps of a long
  one. Each generation keeps its own KV cache on the workers. Up to `queue_size` requests are
  in flight; beyond that `QueueFull` (the API answers 503 with Retry-After).
- A worker lost mid-request: it is cut off, the model switches to its standby or is re-planned
  on the workers left (or on the gateway's own in-process device when none are left), and the
  request is run again within its deadline (a generation resumes from its tokens:
  inference.py). The answer's timings list every failover. Lost: its link closed, or it
  answered no ping after the failure (frozen: SIGSTOP, a hung machine), or it took no byte
  of a shard for 15 s (session.send_frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from assistant.cluster.coordinator import Coordinator
from assistant.cluster.deployment import Deployment
from assistant.cluster.gate import ClusterGate, StepRunner
from assistant.cluster.learning import Learning
from assistant.cluster.linkwatch import RingDrift, measure_links
from assistant.cluster.models import ServedModel, load_served
from assistant.cluster.plans import PlanBook
from assistant.cluster.profiling import device_profile, profile_request
from assistant.cluster.refresh import PLAN_SEQ, fits, replan_stale
from assistant.cluster.remote import RemoteCluster
from assistant.cluster.replan import Replanner
from assistant.errors import DeadlineExceeded, QueueFull, UnknownModel
from assistant.planner.planner import LossyWire, choose
from edge_worker.errors import CommError, GalaxyError, PlanError, WorkerLost
from edge_worker.service import protocol as P
from edge_worker.spec.plan import STRATEGIES, make_plan

log = logging.getLogger(__name__)
T = TypeVar("T")
PLAN_DECODE = 64


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Done callback of a shared planning task: its failure reaches the callers still waiting;
    retrieving it here keeps asyncio from reporting it as never retrieved when none is."""
    if not task.cancelled():
        task.exception()


class ClusterManager:
    def __init__(
        self,
        coordinator: Coordinator,
        *,
        strategy: str = "auto",
        lossy_wire: LossyWire = "off",
        queue_size: int = 8,
        link_mbps: float = 1000.0,
        replan_delay_s: float = 0.5,
        standby: bool = True,
    ) -> None:
        if strategy != "auto" and strategy not in STRATEGIES:
            raise PlanError(f"strategy must be auto or one of {', '.join(STRATEGIES)}")
        self.coordinator, self.strategy, self.link_mbps = coordinator, strategy, link_mbps
        self.lossy_wire = lossy_wire  # the planner may pick wire formats up to this one
        self.models: dict[str, ServedModel] = {}
        self.book = PlanBook()  # current plans, standbys, plans in use
        self.deployments = self.book.current  # model -> the plan new requests run on
        self.standby = standby
        self._releasing: set[asyncio.Task[None]] = set()
        self.measured: dict[tuple[str, str], P.ProfileResult] = {}
        self._profiling: set[asyncio.Task[None]] = set()  # workers being profiled on joining
        # model -> (generation, the task planning it for that generation)
        self._deploying: dict[str, tuple[int, asyncio.Task[Deployment]]] = {}
        self._fresh: set[tuple[str, str]] = set()  # measure again, past the worker's cache
        # Links measured over the data plane, for one set of online workers.
        self.links: dict[str, tuple[float, float]] = {}
        self.links_for: frozenset[str] = frozenset()
        self.drift = RingDrift()  # sets drift.suspect when a ring slows mid-run
        self.learned = Learning()  # each device's overlap cost and speed, from traces
        self.gate = ClusterGate()
        coordinator.quiet = self.gate.step  # measurements take their turn with the requests
        self._waiting = 0  # requests in flight or waiting
        self.queue_size = queue_size
        self.replanner = Replanner(partial(replan_stale, self), replan_delay_s)

    @property
    def replan_status(self) -> dict[str, Any]:
        return self.replanner.status

    @property
    def in_flight(self) -> int:
        """Requests running or waiting for the cluster (the queue's depth)."""
        return self._waiting

    # ----- models and membership -----

    async def load(self, name: str) -> ServedModel:
        self.models[name] = await asyncio.to_thread(load_served, name)
        return self.models[name]

    def served(self, name: str) -> ServedModel:
        if name not in self.models:
            raise UnknownModel(f"model {name!r} is not served here; served: {sorted(self.models)}")
        return self.models[name]

    def changed(self, name: str, online: bool) -> None:
        """A worker joined or left: the plans are re-made in the background, and a joining
        worker is profiled for every served model at once (its registration). A leaving
        worker's models switch to their standbys at once."""
        what = f"{name} {'joined' if online else 'left'}"
        log.info("worker %s; plans will be re-made", what)
        if online:  # its link is measured again (it may have moved, say to Wi-Fi)
            self.links_for -= {name}
            for model in [m for m, d in self.deployments.items() if not d.workers]:
                self.book.drop(model)  # the gateway alone: requests wait for the workers' plan
        else:
            self.release(self.book.lost(name))
        if online and self.models:
            with contextlib.suppress(RuntimeError):  # no running loop: profiled when planned
                task = asyncio.get_running_loop().create_task(self._profile_joined(name))
                self._profiling.add(task)
                task.add_done_callback(self._profiling.discard)
        self.stale(what)
        for dep in self.deployments.values():
            if not online and dep.standby_for == name:  # made for exactly this home
                dep.generation = self.replanner.generation

    async def _profile_joined(self, name: str) -> None:
        """Measure a worker that just registered, for every served model (each a step on the
        cluster: its compute thread is busy meanwhile). Failures wait for the next plan."""
        for m in list(self.models.values()):
            if name not in self.online():
                return
            try:
                r = await asyncio.wait_for(self._profile(name, m), self.coordinator.timeout)
                log.info("%s profiled for %s: %.1f GFLOP/s", name, m.name, r.gflops)
            except (GalaxyError, TimeoutError, KeyError) as exc:
                log.warning("%s: profiling for %s failed (%s)", name, m.name, exc)

    def stale(self, reason: str) -> None:
        """Re-plan every served model in the background; requests keep their plans meanwhile.
        With no event loop to re-plan on, the plans are dropped (the next request re-plans)."""
        if not self.replanner.stale(reason, schedule=bool(self.models)):
            self.book.clear()

    def release(self, deps: list[Deployment]) -> None:
        """Tell the workers of `deps` to free them (in the background)."""
        with contextlib.suppress(RuntimeError):  # no running loop: nothing was deployed on it
            loop = asyncio.get_running_loop()
            for dep in deps:
                if dep.plan_id is not None:
                    task = loop.create_task(self.coordinator.release(dep.plan_id))
                    self._releasing.add(task)
                    task.add_done_callback(self._releasing.discard)

    async def close(self) -> None:
        """Stop background profiling and a pending or running re-plan (gateway shut-down)."""
        tasks = [*self._profiling, *(t for _, t in self._deploying.values())]
        for t in [t for t in tasks if not t.done()]:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.replanner.close()

    def online(self) -> list[str]:
        return sorted(n for n, s in self.coordinator.sessions.items() if s.alive)

    # ----- planning -----

    def reprofile(self, name: str) -> None:
        """On demand: measure `name` again (every model, fresh on the worker too) and the
        links, then re-plan in the background."""
        for key in [k for k in self.measured if k[0] == name]:
            del self.measured[key]
        self._fresh.update((name, model) for model in self.models)
        self.links_for = frozenset()
        self.stale(f"{name} profiled again")

    async def _profile(self, name: str, m: ServedModel) -> P.ProfileResult:
        """The worker's layer costs for this model (measured once per worker and model)."""
        key = (name, m.name)
        if key not in self.measured:
            session = self.coordinator.sessions[name]
            request = profile_request(
                m.cfg, PLAN_SEQ, world=max(2, len(self.online())), fresh=key in self._fresh
            )
            self.measured[key] = await self.coordinator.profile(session, request)
            self._fresh.discard(key)
        return self.measured[key]

    async def plan_model(
        self, m: ServedModel, names: list[str] | None = None, *, fit: bool = False
    ) -> Deployment | None:
        """Choose a plan for `m` on `names` (default: every online worker) and deploy it.
        `fit`: only if it fits in what the workers' memory has left beside the plans they
        hold already (a standby); None when it does not."""
        names = self.online() if names is None else names
        if not names:
            return Deployment(
                m.name,
                make_plan(m.cfg, "local", [1.0]),
                [],
                None,
                {"reason": "no workers online: the gateway computes alone"},
            )
        # (measuring is a step on the cluster of its own: Coordinator.quiet)
        measured = {n: await self._profile(n, m) for n in names}
        links = await measure_links(self, names) if self.strategy == "auto" else {}
        speeds = {n: r.gflops for n, r in measured.items()}
        if self.strategy == "auto":
            profiles = [
                self.learned.applied(
                    device_profile(
                        self.coordinator.sessions[n].hello,
                        measured[n],
                        links.get(n, (self.link_mbps, 0.5)),
                    ),
                    m.name,
                )
                for n in names
            ]
            decode = PLAN_DECODE if m.cfg.causal else 0
            choice = choose(
                m.cfg, profiles, PLAN_SEQ, decode_tokens=decode, lossy_wire=self.lossy_wire
            )
            ring, plan, planned_on = [d.name for d in choice.ring], choice.plan, choice.ring
            why = {
                "predicted_ms": round(choice.predicted.total_ms, 1),
                "alternatives_ms": {k: round(v, 1) for k, v in choice.alternatives.items()},
                "excluded": [{"name": n, "reason": r} for n, r in choice.excluded],
            }
        else:
            ring = names[: m.cfg.n_kv_heads] if self.strategy in ("tp", "hmp") else names
            if self.strategy == "local":
                ring = [max(names, key=lambda n: speeds[n])]
            plan = make_plan(m.cfg, self.strategy, [speeds[n] for n in ring])  # type: ignore[arg-type]
            why = {"reason": f"strategy fixed to {self.strategy} by the operator"}
            planned_on = []
        why["gflops"] = {n: round(speeds[n], 1) for n in ring}
        if fit and not fits(self, m, plan, ring):
            return None
        sessions = [self.coordinator.sessions[n] for n in ring]
        plan_id, _ = await self.coordinator.deploy(m.cfg, m.weights, plan, sessions)
        log.info("%s: %s on %s", m.name, plan.strategy, ring)
        return Deployment(m.name, plan, ring, plan_id, why, planned_on)

    async def deployment(self, model: str) -> Deployment:
        """The model's current plan, planned and deployed first if there is none.

        The planning runs in a task of its own that every caller waiting for this model shares
        and none cancels: a request whose deadline passes (or a re-plan that gives up) stops
        waiting, but shards half-way to a worker are not cut off (the next caller finds the
        deployment done, or still on its way)."""
        if model in self.deployments:
            return self.deployments[model]
        generation, task = self._deploying.get(model, (-1, None))
        if task is None or task.done() or generation != self.replanner.generation:
            # (planning for a home that has changed since is left to finish; not shared)
            task = asyncio.get_running_loop().create_task(self._deploy(model))
            self._deploying[model] = (self.replanner.generation, task)
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _deploy(self, model: str) -> Deployment:
        try:
            generation = self.replanner.generation
            dep = await self.plan_model(self.models[model])
            assert dep is not None  # (only a standby may not fit)
            dep.generation = generation
            if model not in self.deployments:  # (the background may have been quicker)
                self.install(dep)
            # Otherwise, or if a worker left meanwhile, it serves this request once and is
            # released after it (PlanBook.done).
            return dep
        finally:
            if self._deploying.get(model, (0, None))[1] is asyncio.current_task():
                del self._deploying[model]

    def install(self, dep: Deployment) -> None:
        """`dep` becomes its model's plan, unless one of its workers left meanwhile."""
        if set(dep.workers) <= set(self.online()):
            self.release(self.book.install(dep))

    # ----- running requests -----

    async def run(
        self, model: str, work: Callable[[Any], T], deadline_s: float
    ) -> tuple[T, Deployment, dict[str, Any]]:
        """Run `work(runner)` in a thread on the model's current plan, where runner has the
        engine's prefill/decode calls (each taking its turn on the cluster, gate.py); re-plan
        and re-run on a lost worker."""
        self.served(model)
        if self._waiting >= self.queue_size:
            raise QueueFull(f"{self._waiting} requests are already in flight")
        self._waiting += 1
        start = time.monotonic()
        timings: dict[str, Any] = {"failovers": []}
        try:
            while True:
                left = deadline_s - (time.monotonic() - start)
                if left <= 0:
                    raise DeadlineExceeded(f"no answer within {deadline_s:.0f} s")
                dep: Deployment | None = None
                try:
                    dep = await asyncio.wait_for(self.deployment(model), left)
                    timings.setdefault("queue_ms", round((time.monotonic() - start) * 1e3, 2))
                    self.book.use(dep)
                    try:
                        result, trace = await self._work(dep, work, left)
                    finally:
                        self.release(self.book.done(dep))
                    timings["trace"] = trace
                    if self.strategy == "auto" and dep.plan_id is not None:
                        self._watch_ring(dep.plan_id, trace)
                        # Only the planner's plans carry profiles to learn against.
                        if dep.profiles and (
                            why := self.learned.observe(dep, self.models[dep.model].cfg, trace)
                        ):
                            self.stale(why)
                    return result, dep, timings
                except (CommError, TimeoutError) as exc:
                    await self._failover(model, dep, exc, timings, start)
        finally:
            self._waiting -= 1

    async def _work(
        self, dep: Deployment, work: Callable[[Any], T], timeout: float
    ) -> tuple[T, list[dict[str, Any]]]:
        """`work(runner)` on `dep`, in a thread; its result and the runner's trace."""
        loop = asyncio.get_running_loop()
        runner = StepRunner(self._runner(dep), loop, self.gate.step, dep.workers)
        result = await asyncio.wait_for(asyncio.to_thread(work, runner), timeout)
        return result, runner.trace

    def _watch_ring(self, plan_id: str, trace: list[dict[str, Any]]) -> None:
        if self.drift.observe(plan_id, trace):
            ms_per_mb, _ = self.drift.wait_per_mb(trace)
            log.warning("the ring waits %.0f ms/MB now: checking the links", ms_per_mb)

    def _runner(self, dep: Deployment) -> Any:
        if not dep.workers:
            return self.models[dep.model].in_process()
        bridge = RemoteCluster(self.coordinator, asyncio.get_running_loop())
        bridge.plan, bridge.plan_id = dep.plan, dep.plan_id
        return bridge

    async def _failover(
        self,
        model: str,
        dep: Deployment | None,
        exc: BaseException,
        timings: dict[str, Any],
        start: float,
    ) -> None:
        # Whoever's control link closed is gone, and so is a worker whose link is open but
        # who answers no ping (a dead one whose close has not reached us yet; frozen: SIGSTOP,
        # a hung machine); their models switch to their standbys. If every worker answers,
        # the ring itself broke and a fresh deployment on the same workers re-forms it. A
        # failed deployment (no `dep`) may have involved any worker.
        involved = dep.workers if dep else self.online()
        if isinstance(exc, WorkerLost) and exc.peer not in involved:
            involved = [*involved, exc.peer]
        gone = [n for n in involved if n not in self.online()]
        for name in gone:
            with contextlib.suppress(Exception):
                await self.coordinator.disconnect(name, "lost during a request")
        frozen = await self.coordinator.unresponsive([n for n in involved if n not in gone])
        gone += frozen
        for name in gone:
            self.release(self.book.lost(name))
        if not gone and dep is not None and self.deployments.get(model) is dep:
            self.release(self.book.drop(model))
        log.warning("%s: %s; re-planning (lost: %s)", model, exc, ", ".join(gone) or "none")
        timings["failovers"].append(
            {
                "at_ms": round((time.monotonic() - start) * 1e3, 1),
                "lost": gone,
                "error": str(exc)[:200],
            }
        )
        if len(timings["failovers"]) > 4:
            raise DeadlineExceeded(f"gave up after {len(timings['failovers'])} failovers: {exc}")
