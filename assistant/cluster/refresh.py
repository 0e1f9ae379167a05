"""The background re-plan (replan.py runs it, the manager's plans kept in plans.py).

Every served model gets the plan for the home as it is now, installed as soon as it is up (the
plan it replaces keeps serving meanwhile); then its standbys: for each worker of that plan, a
plan on the workers left without it, deployed ahead where their memory allows, which the
model switches to at once when that worker is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from assistant.cluster.deployment import Deployment
from assistant.cluster.models import ServedModel
from assistant.planner.memory import memory_mb
from edge_worker.engine.weights import tensor_bytes
from edge_worker.errors import GalaxyError
from edge_worker.spec.plan import ParallelPlan

if TYPE_CHECKING:
    from assistant.cluster.manager import ClusterManager

PLAN_SEQ = 256  # typical request length the plans are optimised for
STAGE_SHARE = 0.25  # stage_whole: the largest model staged, as a share of a worker's memory

log = logging.getLogger(__name__)


async def replan_stale(manager: ClusterManager) -> dict[str, Any]:
    """Plan and deploy every served model whose plan is missing or older than the home's
    last change, installing each as soon as it is up; then the standbys. One model's
    failure leaves that model on its plan (or, with none, to the next request)."""
    out: dict[str, Any] = {}
    generation = manager.replanner.generation
    for model in sorted(manager.models):
        try:
            dep = await asyncio.wait_for(refresh(manager, model), manager.coordinator.timeout)
            out[model] = {"strategy": dep.plan.strategy, "devices": dep.describe()["devices"]}
        except (GalaxyError, TimeoutError) as exc:
            log.warning("%s: background re-plan failed (%s); next request re-plans", model, exc)
            out[model] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    for model in sorted(manager.models):
        if generation != manager.replanner.generation:
            break  # the home changed again: the next round makes them
        try:
            await asyncio.wait_for(make_standbys(manager, model), manager.coordinator.timeout)
        except (GalaxyError, TimeoutError) as exc:
            log.warning("%s: standby plans failed (%s)", model, exc)
    return out


async def refresh(manager: ClusterManager, model: str) -> Deployment:
    """The model's plan for the home as it is now; the plan it replaces keeps serving
    until the new one is up (and its requests finish on it)."""
    generation = manager.replanner.generation
    dep = manager.deployments.get(model)
    if dep is None:
        return await manager.deployment(model)
    if dep.generation == generation:
        return dep
    new = await manager.plan_model(manager.models[model])
    assert new is not None
    new.generation = generation
    manager.install(new)
    if manager.deployments.get(model) is not new:
        manager.release([new])  # a worker of it left meanwhile
    return new


async def make_standbys(manager: ClusterManager, model: str) -> None:
    """For each worker of the model's plan, a plan without it, deployed ahead (where the
    memory allows; one that does not fit stops the rest). Then the whole model staged on the
    disk of every worker where it is small (`stage_whole`)."""
    dep = manager.deployments.get(model)
    if not manager.standby or dep is None or not dep.workers:
        return
    await _standby_plans(manager, model, dep)
    await stage_whole(manager, model)


async def stage_whole(manager: ClusterManager, model: str) -> None:
    """Every online worker keeps the whole model on its disk, where the model takes at most
    `STAGE_SHARE` of the worker's memory budget: a standby made after a loss is often the
    model on one device alone, which then loads from disk instead of waiting for the whole
    model to cross the link (seconds of both ends' CPU, in the middle of a fault)."""
    m = manager.models[model]
    size_mb = tensor_bytes(m.weights) / 2**20
    for name in manager.online():
        hello = manager.coordinator.sessions[name].hello
        if size_mb <= STAGE_SHARE * ((hello.memory_mb or 4096.0) - hello.reserve_mb):
            session = manager.coordinator.sessions[name]
            if await manager.coordinator.stage(m.cfg, m.weights, session):
                log.info("%s: the whole model staged on %s's disk", model, name)


async def _standby_plans(manager: ClusterManager, model: str, dep: Deployment) -> None:
    for lost in dep.workers:
        if lost in manager.book.standby.get(model, {}):
            continue
        names = [n for n in manager.online() if n != lost]
        if not names:  # (the gateway's own device stands by anyway)
            continue
        spare = await manager.plan_model(manager.models[model], names, fit=True)
        if spare is None:
            return
        online = set(manager.online())
        if manager.deployments.get(model) is not dep or not set(spare.workers) <= online:
            manager.release([spare])  # the home changed meanwhile
            return
        spare.standby_for = lost
        manager.release(manager.book.add_standby(lost, spare))
        log.info(
            "%s: standby for losing %s: %s on %s",
            model,
            lost,
            spare.plan.strategy,
            spare.workers,
        )


def fits(manager: ClusterManager, m: ServedModel, plan: ParallelPlan, ring: list[str]) -> bool:
    """Whether each worker of `ring` has the memory for its rank of `plan` beside every
    plan it holds already (its budget: free memory at registration less its reserve)."""

    def need(dep: Deployment, rank: int) -> float:
        return memory_mb(manager.models[dep.model].cfg, dep.plan, rank, PLAN_SEQ)

    for rank, name in enumerate(ring):
        hello = manager.coordinator.sessions[name].hello
        budget = (hello.memory_mb or 4096.0) - hello.reserve_mb
        held = manager.book.held_mb(name, need)
        if held + memory_mb(m.cfg, plan, rank, PLAN_SEQ) > budget:
            log.info("%s: no standby on %s: it has %.0f MB left", m.name, name, budget - held)
            return False
    return True
