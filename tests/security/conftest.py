"""Hostile inputs, scripted: what a security reviewer tries at every boundary of a real home (a
gateway with the sample home and Wyoming, two paired worker processes). Each case is refused in
its own way (a status and a message, a closed connection, an Error from the worker), and then
the gateway and both workers are still up and a legitimate request still answers correctly
(`Home.assert_still_serving`: health, an embedding across both workers equal to the one made
before any attack, a home command).

Each file lists its cases in its docstring, numbered across the package: test_credentials
(1-15: API tokens, device certificates, pairing codes), test_ring_port (16-25: a worker's ring
port), test_exhaustion (25-32: idle connections, huge bodies), test_numbers (33-48: the API's
numbers and strings).

One home serves every case: a real gateway (the sample home, Wyoming on a free port) with two
paired worker processes, and the check every case ends with."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from assistant.cluster.remote import WorkerProcess
from assistant.home.loader import sample_home_path
from assistant.launcher import RunningGateway, free_port
from assistant.trust.ca import HomeCA
from edge_worker.service.credentials import Credentials
from tests.gateway.conftest import gateway_settings
from tests.security.hostile import device, request

WORKERS = ["kitchen-pi", "laptop"]
HOME_NAME = f"hostile test home {uuid.uuid4().hex[:8]}"
SENTENCE = "turn on the kitchen light"


@dataclass
class Home:
    gw: RunningGateway
    workers: list[WorkerProcess]
    root: Path
    embedding: torch.Tensor  # of SENTENCE, computed before any attack

    def assert_still_serving(self) -> None:
        """The gateway and every worker process are up, and legitimate requests answer
        correctly: the health check, an embedding across both workers (equal to the one
        computed before the attacks) and a spoken-style home command."""
        for w in self.workers:
            assert w.proc.poll() is None, f"{w.name} died: {w.log_path.read_text()[-2000:]}"
        assert self.gw.thread.is_alive(), "the gateway's server thread ended"
        status, health, _ = request(self.gw, "GET", "/v1/health", token=None)
        assert status == 200 and health["workers_online"] == len(WORKERS), health
        answer = self.gw.call("POST", "/v1/embed", {"texts": [SENTENCE]})
        assert sorted(answer["plan"]["devices"]) == WORKERS
        got = torch.tensor(answer["embeddings"][0])
        torch.testing.assert_close(got, self.embedding, atol=1e-4, rtol=0)
        turn = self.gw.call("POST", "/v1/assist", {"text": SENTENCE, "speak": False})
        assert turn["intent"]["name"] == "HassTurnOn", turn
        lights = {d["id"]: d for d in self.gw.call("GET", "/v1/home")["devices"]}
        assert lights["light.kitchen_ceiling"]["state"]["on"] is True


@pytest.fixture(scope="package")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("hostile")
    settings = gateway_settings(
        root,
        home_file=sample_home_path(),
        home_name=HOME_NAME,
        wyoming=True,
        wyoming_port=free_port(),
        max_upload_mb=1,
        # No mDNS from the real gateway: the rogue one is then the only gateway announcing
        # this home, as it would be to a worker that heard it first.
        mdns_interfaces=[],
    )
    with RunningGateway(settings) as gw:
        workers = gw.add_workers(WORKERS, root / "workers")
        gw.wait_online(WORKERS)
        answer = gw.call("POST", "/v1/embed", {"texts": [SENTENCE]})
        assert sorted(answer["plan"]["devices"]) == WORKERS
        yield Home(gw, workers, root, torch.tensor(answer["embeddings"][0]))


@pytest.fixture(scope="package")
def mallory(home: Home) -> Credentials:
    """A device of the home gone bad: its certificate is from the home CA."""
    return device(home.gw.state.ca, home.root / "mallory", "mallory")


@pytest.fixture(scope="package")
def neighbour(home: Home) -> Credentials:
    """A device of another home."""
    return device(
        HomeCA.load_or_create(home.root / "other-ca", "Next Door"), home.root / "nb", "mallory"
    )
