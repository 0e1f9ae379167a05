"""The roles as the containers run them: a worker configured by environment variables alone
(as compose.yaml does), its link status, SIGTERM, and the image's health check for both roles
(docker/healthcheck.py), against a real gateway and a real worker process on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from assistant.launcher import RunningGateway
from tests.gateway.conftest import gateway_settings

pytestmark = pytest.mark.slow
HEALTHCHECK = Path(__file__).resolve().parents[2] / "docker" / "healthcheck.py"


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with RunningGateway(gateway_settings(tmp_path_factory.mktemp("roles"))) as gw:
        yield gw


@pytest.fixture(scope="module")
def worker(
    gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`galaxy worker` with no option at all: everything from the environment."""
    data = tmp_path_factory.mktemp("attic")
    env = {
        **os.environ,
        "GALAXY_GATEWAY": gateway.url,
        "GALAXY_WORKER_NAME": "attic",
        "PAIRING_CODE": gateway.call("POST", "/v1/pairing/codes")["code"],
        "GALAXY_WORKER_DATA_DIR": str(data),
        "GALAXY_DATA_HOST": "auto",
        "GALAXY_MDNS_INTERFACES": '["127.0.0.1"]',
    }
    with open(data / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "worker"], env=env, stdout=log, stderr=log
        )
    try:
        gateway.wait_online(["attic"])
        yield proc, data
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_worker_set_up_by_environment_pairs_and_reports_its_link_up(
    gateway: RunningGateway, worker: tuple[subprocess.Popen[bytes], Path]
) -> None:
    proc, data = worker

    status = json.loads((data / "status.json").read_text())

    assert (status["worker"], status["link"], status["pid"]) == ("attic", "up", proc.pid)
    assert status["gateway"] == gateway.state.coordinator.url
    assert (data / "credentials" / "cert.pem").is_file()


def test_the_health_check_finds_the_gateway_healthy(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GALAXY_HOST", gateway.settings.host)
    monkeypatch.setenv("GALAXY_PORT", str(gateway.settings.port))

    healthy, why = load_healthcheck().gateway()

    assert healthy, why


def test_the_health_check_finds_a_linked_worker_healthy(
    worker: tuple[subprocess.Popen[bytes], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GALAXY_WORKER_DATA_DIR", str(worker[1]))

    healthy, why = load_healthcheck().worker()

    assert healthy, why


def test_sigterm_stops_the_worker_at_once_and_its_link_is_down(
    gateway: RunningGateway,
    worker: tuple[subprocess.Popen[bytes], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc, data = worker
    started = time.monotonic()

    proc.send_signal(signal.SIGTERM)
    code = proc.wait(10)

    assert code == 0, (data / "worker.log").read_text()[-2000:]
    assert time.monotonic() - started < 10
    assert json.loads((data / "status.json").read_text())["link"] == "down"
    assert "Traceback" not in (data / "worker.log").read_text()
    monkeypatch.setenv("GALAXY_WORKER_DATA_DIR", str(data))
    assert not load_healthcheck().worker()[0]
