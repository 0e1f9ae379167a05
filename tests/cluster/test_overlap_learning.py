"""The gateway learns each device's overlap cost from real traces: two worker processes run
MiniLM (the packaged model) on an overlapped hmp plan, and every long prefill's per-layer
compute teaches the manager that device's factor (planner/calibrate.py)."""

from __future__ import annotations

import pytest

from assistant.cluster.deployment import Deployment
from assistant.cluster.inference import embed
from assistant.cluster.manager import ClusterManager
from assistant.cluster.profiling import device_profile
from assistant.cluster.remote import local_workers
from assistant.planner.calibrate import BOUNDS, DRIFT, SETTLED
from assistant.planner.profiles import OVERLAP_COMPUTE
from edge_worker.spec.plan import make_plan

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(600)]
TEXTS = ["the porch lamp, the hall thermostat and the kitchen lights " * 16] * 2  # ~200 tokens


def test_overlapped_requests_teach_each_device_its_factor() -> None:
    with local_workers(2) as (cluster, names):
        manager = ClusterManager(cluster.coordinator, strategy="auto")
        served = cluster.call(manager.load("minilm"))
        profiles = []
        for n in names:
            measured = cluster.call(manager._profile(n, served))
            hello = cluster.coordinator.sessions[n].hello
            profiles.append(device_profile(hello, measured, (1000.0, 0.5)))
        plan = make_plan(served.cfg, "hmp", [1.0, 1.0], overlap=True)
        sessions = [cluster.coordinator.sessions[n] for n in names]
        plan_id, _ = cluster.call(
            cluster.coordinator.deploy(served.cfg, served.weights, plan, sessions)
        )
        manager.deployments["minilm"] = Deployment("minilm", plan, names, plan_id, {}, profiles)

        generation = manager.replanner.generation
        for _ in range(SETTLED + 1):  # the first, cold request may be out of bounds
            if "minilm" not in manager.deployments:
                break  # re-planned with what it learned
            out = cluster.call(embed(manager, "minilm", TEXTS, 120))
            assert out.plan["overlap"] and out.vectors.shape == (2, 384)
        cluster.call(manager.close())  # a re-plan it asked for stops with the test

    for n in names:
        assert manager.overlap.counts.get((n, "minilm"), 0) >= 1
        factor = manager.overlap.factor(n, "minilm")
        assert factor is not None and BOUNDS[0] <= factor <= BOUNDS[1]
    # A factor settled far from the one planned with (the prior) makes the plans stale.
    settled = [manager.overlap.factor(p.name, "minilm", SETTLED) for p in profiles]
    far = any(f is not None and abs(f - OVERLAP_COMPUTE) > DRIFT * OVERLAP_COMPUTE for f in settled)
    assert (manager.replanner.generation > generation) == far, (settled, far)
