"""A worker joining or leaving re-plans in the background: the next request finds its plan made
and its shards shipped, and a request in flight finishes on the plan it started with (which is
released after it)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.error
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from assistant.cluster.coordinator import Coordinator
from assistant.cluster.deployment import Deployment
from assistant.cluster.manager import ClusterManager
from assistant.launcher import RunningGateway
from edge_worker.errors import WorkerLost
from edge_worker.spec.plan import make_plan
from tests.engine.configs import mha_config
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_api import reference_tokens

MODEL = "smollm2-135m"


class FakePlanner:
    """Stands in for `ClusterManager.plan_model`: counts plans, fails on demand."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail: Exception | None = None

    async def __call__(self, m: Any, names: Any = None, *, fit: bool = False) -> Deployment:
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        cfg = mha_config()
        plan = make_plan(cfg, "local", [1.0])
        return Deployment(m.name, plan, ["kitchen-pi"], f"plan-{self.calls}")


async def used_manager() -> tuple[ClusterManager, FakePlanner, list[str]]:
    """A manager that has served model "m" once on worker kitchen-pi (so changes re-plan it);
    the plan ids its coordinator was told to release. Nothing really runs on the worker."""
    coordinator = Coordinator()
    coordinator.sessions = {"kitchen-pi": SimpleNamespace(alive=True)}  # type: ignore[dict-item]
    manager = ClusterManager(coordinator, replan_delay_s=0.05, standby=False)
    planner = FakePlanner()
    manager.plan_model = planner  # type: ignore[method-assign]
    manager.models["m"] = SimpleNamespace(name="m", in_process=lambda: "runner")  # type: ignore[assignment]
    released: list[str] = []

    async def release(plan_id: str) -> None:
        released.append(plan_id)

    manager.coordinator.release = release  # type: ignore[method-assign]
    await manager.deployment("m")
    return manager, planner, released


async def settled(manager: ClusterManager, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while manager.replan_status["state"] != "idle":
        assert time.monotonic() < deadline, f"re-plan still {manager.replan_status['state']}"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)  # (releases run in tasks of their own)
    return manager.replan_status


async def test_a_burst_of_changes_re_plans_once_in_the_background() -> None:
    manager, planner, released = await used_manager()

    manager.changed("laptop", True)
    manager.changed("porch-pi", True)
    manager.changed("laptop", False)
    # Meanwhile requests keep the plan they have (none of its workers left).
    assert manager.replan_status["state"] == "pending"
    assert manager.deployments["m"].plan_id == "plan-1"
    status = await settled(manager)

    assert planner.calls == 2
    assert manager.deployments["m"].plan_id == "plan-2"
    assert released == ["plan-1"]
    assert status["runs"] == 1
    assert status["last"]["models"]["m"] == {"strategy": "local", "devices": ["kitchen-pi"]}
    assert status["last"]["reason"] == "laptop joined; porch-pi joined; laptop left"


async def test_a_re_plan_does_not_wait_for_the_request_in_flight() -> None:
    """The new plan is installed while a request still runs on the old one, which is released
    only when that request has finished."""
    manager, planner, released = await used_manager()
    started, finish = threading.Event(), threading.Event()

    def work(runner: Any) -> str:
        started.set()
        finish.wait(10)
        return "done"

    request = asyncio.create_task(manager.run("m", work, 30))
    await asyncio.to_thread(started.wait, 10)
    manager.changed("laptop", True)
    await settled(manager)
    assert planner.calls == 2 and manager.deployments["m"].plan_id == "plan-2"
    assert released == [], "a plan was released under its request"
    finish.set()
    _, dep, timings = await request
    await asyncio.sleep(0.01)

    assert dep.plan_id == "plan-1" and not timings["failovers"]
    assert released == ["plan-1"]


async def test_the_gateways_own_plan_gives_way_to_a_joining_worker() -> None:
    """Computing alone is a fallback: once a worker is there, the next request waits for the
    plan that uses it rather than running on the gateway."""
    manager, _, _ = await used_manager()
    cfg = mha_config()
    manager.deployments["m"] = Deployment("m", make_plan(cfg, "local", [1.0]), [], None)

    manager.changed("laptop", True)

    assert "m" not in manager.deployments
    assert (await manager.deployment("m")).workers == ["kitchen-pi"]
    await settled(manager)


async def test_a_failed_re_plan_is_logged_and_the_model_keeps_its_plan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager, planner, released = await used_manager()
    planner.fail = WorkerLost("laptop closed its connection")

    with caplog.at_level(logging.WARNING, logger="assistant.cluster.refresh"):
        manager.changed("porch-pi", True)
        status = await settled(manager)

    assert manager.deployments["m"].plan_id == "plan-1" and released == []
    assert "WorkerLost" in status["last"]["models"]["m"]["error"]
    assert "background re-plan failed" in caplog.text


async def test_closing_the_manager_cancels_a_pending_re_plan() -> None:
    manager, planner, _ = await used_manager()
    manager.changed("laptop", True)

    await manager.close()
    await asyncio.sleep(0.1)

    assert manager.replan_status["state"] == "idle" and planner.calls == 1


def test_a_change_outside_an_event_loop_only_drops_the_plans() -> None:
    manager = ClusterManager(Coordinator(), replan_delay_s=0.05)
    manager.plan_model = FakePlanner()  # type: ignore[method-assign]
    manager.models["m"] = SimpleNamespace(name="m")  # type: ignore[assignment]
    asyncio.run(manager.deployment("m"))

    manager.changed("laptop", True)

    assert manager.deployments == {} and manager.replan_status["state"] == "idle"


# ----- a real gateway with worker processes -----


def settled_runs(gw: RunningGateway, timeout: float = 120) -> int:
    """The number of background re-plans so far, once none is pending or running (workers
    coming online are planned for at once)."""
    deadline = time.monotonic() + timeout
    while (status := gw.call("GET", "/v1/plan")["replan"])["state"] != "idle":
        assert time.monotonic() < deadline, f"re-plan still {status['state']}"
        time.sleep(0.2)
    return int(status["runs"])


def wait_re_planned(gw: RunningGateway, runs_before: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = gw.call("GET", "/v1/plan")["replan"]
        if status["runs"] > runs_before and status["state"] == "idle":
            return status
        assert time.monotonic() < deadline, f"no background re-plan within {timeout:.0f} s"
        time.sleep(0.2)


@pytest.mark.long  # 75 s: with the long suites, so make test stays under 25 minutes
def test_a_joining_worker_has_its_shard_before_the_next_request(tmp_path: Path) -> None:
    prompt = "Name three herbs that grow on a windowsill."
    with RunningGateway(gateway_settings(tmp_path)) as gw:
        gw.add_workers(["kitchen-pi"], tmp_path / "workers")
        gw.wait_online(["kitchen-pi"])
        # Registration: the worker is profiled for the served model before any request.
        deadline = time.monotonic() + 60
        while MODEL not in gw.call("GET", "/v1/devices/kitchen-pi")["profile"]["gflops"]:
            assert time.monotonic() < deadline, "the joining worker was never profiled"
            time.sleep(0.2)
        assert ("kitchen-pi", MODEL) in gw.state.manager.measured
        first = gw.call("POST", "/v1/generate", {"prompt": prompt, "max_new_tokens": 8})
        assert first["plan"]["devices"] == ["kitchen-pi"]
        runs = settled_runs(gw)

        gw.add_workers(["laptop"], tmp_path / "workers")
        gw.wait_online(["kitchen-pi", "laptop"])
        status = wait_re_planned(gw, runs)
        plan = gw.call("GET", "/v1/plan")["plans"][MODEL]
        deployed = gw.state.manager.deployments[MODEL]
        answer = gw.call("POST", "/v1/generate", {"prompt": prompt, "max_new_tokens": 8})

        assert "laptop joined" in status["last"]["reason"]
        assert sorted(status["last"]["models"][MODEL]["devices"]) == ["kitchen-pi", "laptop"]
        assert sorted(plan["devices"]) == ["kitchen-pi", "laptop"]
        assert sorted(answer["plan"]["devices"]) == ["kitchen-pi", "laptop"]
        assert answer["tokens"] == reference_tokens(gw, prompt, 8)
        assert not answer["timings"]["failovers"]
        assert gw.state.manager.deployments[MODEL] is deployed, "the request planned again"

        # On demand: the owner asks for a device to be measured again; the plan follows.
        before = gw.state.manager.measured[("laptop", MODEL)]
        accepted = gw.call("POST", "/v1/devices/laptop/profile")
        again = wait_re_planned(gw, status["runs"])
        after = gw.state.manager.measured[("laptop", MODEL)]

        assert accepted["device"] == "laptop"
        assert "laptop profiled again" in again["last"]["reason"]
        assert not after.cached and after is not before
        assert sorted(again["last"]["models"][MODEL]["devices"]) == ["kitchen-pi", "laptop"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            gw.call("POST", "/v1/devices/porch-pi/profile")
        assert refused.value.code == 409


def test_a_leaving_worker_is_planned_out_before_the_next_request(tmp_path: Path) -> None:
    prompt = "How do I descale a kettle?"
    with RunningGateway(gateway_settings(tmp_path)) as gw:
        _, laptop = gw.add_workers(["kitchen-pi", "laptop"], tmp_path / "workers")
        gw.wait_online(["kitchen-pi", "laptop"])
        first = gw.call("POST", "/v1/generate", {"prompt": prompt, "max_new_tokens": 8})
        assert sorted(first["plan"]["devices"]) == ["kitchen-pi", "laptop"]
        runs = settled_runs(gw)

        laptop.proc.kill()
        status = wait_re_planned(gw, runs)
        plan = gw.call("GET", "/v1/plan")["plans"][MODEL]
        deployed = gw.state.manager.deployments[MODEL]
        answer = gw.call("POST", "/v1/generate", {"prompt": prompt, "max_new_tokens": 8})

        assert "laptop left" in status["last"]["reason"]
        assert plan["devices"] == ["kitchen-pi"]
        assert answer["plan"]["devices"] == ["kitchen-pi"]
        assert answer["tokens"] == reference_tokens(gw, prompt, 8)
        assert not answer["timings"]["failovers"]
        assert gw.state.manager.deployments[MODEL] is deployed, "the request planned again"
