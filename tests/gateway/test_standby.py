"""Standby plans (cluster/refresh.py, plans.py): with three workers, each model's plan has a
standby deployed ahead for the loss of each of its workers. A worker killed (SIGKILL) switches
its models to the standby made for it, and the next request answers on it right away, with no
shard shipped and no ring formed meanwhile; the plans that used the dead worker are released."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from assistant.launcher import RunningGateway
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_replan import settled_runs

pytestmark = pytest.mark.slow
NAMES = ["kitchen-pi", "laptop", "desk-pc"]
TEXTS = ["turn on the porch light", "what is the weather tomorrow"]


def test_a_killed_worker_hands_its_models_to_their_standbys(tmp_path: Path) -> None:
    with RunningGateway(gateway_settings(tmp_path)) as gw:
        workers = gw.add_workers(NAMES, tmp_path / "workers")
        gw.wait_online(NAMES)
        model = gw.state.settings.embed_model
        manager = gw.state.manager
        first = gw.call("POST", "/v1/embed", {"texts": TEXTS})
        assert sorted(first["plan"]["devices"]) == sorted(NAMES)
        settled_runs(gw)
        deadline = time.monotonic() + 120  # standbys come after the plans
        while len(manager.book.standby.get(model, {})) < 3:
            assert time.monotonic() < deadline, "no standby for every worker"
            time.sleep(0.2)
            settled_runs(gw)
        old = manager.deployments[model]
        spares = dict(manager.book.standby[model])
        assert {lost: sorted(d.workers) for lost, d in spares.items()} == {
            lost: sorted(set(NAMES) - {lost}) for lost in NAMES
        }
        deployed = set(gw.state.coordinator.deployments)

        victim = workers[1]
        victim.proc.kill()
        victim.proc.wait()
        answer = gw.call("POST", "/v1/embed", {"texts": TEXTS})

        assert sorted(answer["plan"]["devices"]) == sorted(set(NAMES) - {victim.name})
        for got, want in zip(answer["embeddings"], first["embeddings"], strict=True):
            assert got == pytest.approx(want, abs=1e-4)
        assert manager.deployments[model] is spares[victim.name], "it planned again"
        # Released: the old plan and the standbys that counted on the victim.
        gone = {old.plan_id} | {d.plan_id for n, d in spares.items() if n != victim.name}
        assert gone <= deployed and not gone & set(gw.state.coordinator.deployments)
