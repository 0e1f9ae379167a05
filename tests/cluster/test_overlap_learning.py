"""The gateway learns from real traces: two worker processes run MiniLM (the packaged model)
on an hmp plan, and every long prefill's per-layer compute teaches the manager each device's
overlap factor (overlapped plan: planner/calibrate.py) or its speed (plain plan:
planner/speed.py)."""

from __future__ import annotations

import pytest

from assistant.cluster.deployment import Deployment
from assistant.cluster.inference import embed
from assistant.cluster.manager import ClusterManager
from assistant.cluster.profiling import device_profile
from assistant.cluster.remote import local_workers
from assistant.planner import calibrate, speed
from assistant.planner.profiles import OVERLAP_COMPUTE
from edge_worker.spec.plan import make_plan

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(600)]
TEXTS = ["the porch lamp, the hall thermostat and the kitchen lights " * 16] * 2  # ~200 tokens


@pytest.mark.parametrize("overlap", [True, False], ids=["overlap", "speed"])
def test_requests_teach_each_device_its_factor(overlap: bool) -> None:
    rules = calibrate if overlap else speed  # BOUNDS, DRIFT, SETTLED of that learner
    with local_workers(2) as (cluster, names):
        manager = ClusterManager(cluster.coordinator, strategy="auto")
        learner = manager.learned.overlap if overlap else manager.learned.speed
        served = cluster.call(manager.load("minilm"))
        profiles = []
        for n in names:
            measured = cluster.call(manager._profile(n, served))
            hello = cluster.coordinator.sessions[n].hello
            profiles.append(device_profile(hello, measured, (1000.0, 0.5)))
        plan = make_plan(served.cfg, "hmp", [1.0, 1.0], overlap=overlap)
        sessions = [cluster.coordinator.sessions[n] for n in names]
        plan_id, _ = cluster.call(
            cluster.coordinator.deploy(served.cfg, served.weights, plan, sessions)
        )
        manager.deployments["minilm"] = Deployment("minilm", plan, names, plan_id, {}, profiles)

        generation = manager.replanner.generation
        for _ in range(rules.SETTLED + 1):  # the first, cold request may be out of bounds
            if "minilm" not in manager.deployments:
                break  # re-planned with what it learned
            out = cluster.call(embed(manager, "minilm", TEXTS, 120))
            assert out.plan["overlap"] == overlap and out.vectors.shape == (2, 384)
        cluster.call(manager.close())  # a re-plan it asked for stops with the test

    for n in names:
        assert learner.counts.get((n, "minilm"), 0) >= 1
        factor = learner.factor(n, "minilm")
        assert factor is not None and rules.BOUNDS[0] <= factor <= rules.BOUNDS[1]
    # A factor settled far from the one planned with (the prior) makes the plans stale.
    prior = OVERLAP_COMPUTE if overlap else 1.0
    settled = [learner.factor(p.name, "minilm", rules.SETTLED) for p in profiles]
    far = any(f is not None and abs(f - prior) > rules.DRIFT * prior for f in settled)
    assert (manager.replanner.generation > generation) == far, (settled, far)
