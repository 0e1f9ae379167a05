"""The gateway restarted under its workers: after a crash (SIGKILL) or a clean stop (SIGTERM)
the workers come back by themselves, with their credentials (nothing is paired again), and the
next request is right; a gateway that comes back on another port is found again by mDNS."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from galaxy_bench.soak_traffic import References, Request
from tests.soak.conftest import MAX_NEW_TOKENS
from tests.soak.processes import GatewayProcess, WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.long]
NAMES = {"hall-pi", "den-pc"}


class Home:
    def __init__(self, gateway: GatewayProcess, workers: list[WorkerProcess]) -> None:
        self.gateway, self.workers = gateway, workers
        # What must not change across restarts: the processes, their certificates, their URLs.
        self.pids = {w.name: w.proc.pid for w in workers}
        self.serials = {w.name: w.credentials().serial for w in workers}

    def generate_is_right(self, references: References) -> bool:
        request = Request("generate", 0)
        path, body = request.body(MAX_NEW_TOKENS)
        return references.right(request, self.gateway.call("POST", path, body))

    def saved_urls(self) -> set[str]:
        return {w.credentials().gateway for w in self.workers}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("restart")
    gateway = GatewayProcess(root)
    gateway.start()
    workers = [WorkerProcess(gateway, name, root / "workers") for name in sorted(NAMES)]
    try:
        gateway.wait_online(NAMES)
        yield Home(gateway, workers)
    finally:
        for w in workers:
            w.close()
        gateway.close()


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "clean-stop"])
def test_workers_come_back_by_themselves_after_the_gateway_restarts(
    home: Home, references: References, stop: signal.Signals
) -> None:
    urls = home.saved_urls()

    home.gateway.stop(stop)
    home.gateway.start()
    home.gateway.wait_online(NAMES, timeout=120)

    assert {w.name: w.proc.pid for w in home.workers if w.proc.poll() is None} == home.pids
    assert {w.name: w.credentials().serial for w in home.workers} == home.serials
    assert home.saved_urls() == urls  # the same worker port: no configuration needed
    assert home.generate_is_right(references)


def test_workers_find_a_gateway_that_moved_to_another_port_by_mdns(
    home: Home, references: References
) -> None:
    from assistant.launcher import free_port

    (old,) = home.saved_urls()
    port = free_port()

    home.gateway.stop(signal.SIGTERM)
    home.gateway.start(GALAXY_WORKER_PORT=str(port))
    home.gateway.wait_online(NAMES, timeout=150)

    assert home.saved_urls() == {f"wss://127.0.0.1:{port}/worker"} != {old}
    assert {w.name: w.proc.pid for w in home.workers if w.proc.poll() is None} == home.pids
    assert {w.name: w.credentials().serial for w in home.workers} == home.serials
    assert home.generate_is_right(references)
