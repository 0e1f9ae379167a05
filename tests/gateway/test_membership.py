"""Workers come and go: found by mDNS, dropped when they stop answering heartbeats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from assistant.cluster.remote import WorkerProcess
from assistant.launcher import RunningGateway
from tests.gateway.conftest import gateway_settings


def test_a_worker_without_a_gateway_url_finds_it_by_mdns_and_pairs(tmp_path: Path) -> None:
    with RunningGateway(gateway_settings(tmp_path, home_name=f"Test Home {os.getpid()}")) as gw:
        code = gw.call("POST", "/v1/pairing/codes")["code"]
        log_path = tmp_path / "worker.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "assistant.cli",
                    "worker",
                    "--name",
                    "porch-pi",
                    "--pairing-code",
                    code,
                    "--data-dir",
                    str(tmp_path / "porch-pi"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        gw.workers.append(WorkerProcess("porch-pi", proc, log_path))

        gw.wait_online(["porch-pi"], timeout=60)

        assert "found the gateway" in log_path.read_text()


def test_a_worker_that_stops_answering_is_marked_offline(tmp_path: Path) -> None:
    with RunningGateway(gateway_settings(tmp_path)) as gw:
        (worker,) = gw.add_workers(["shed-pi"], tmp_path / "workers")
        gw.wait_online(["shed-pi"])

        os.kill(worker.proc.pid, signal.SIGSTOP)  # alive but silent: no heartbeat answers
        try:
            deadline = time.monotonic() + 60
            while any(d["online"] for d in gw.call("GET", "/v1/devices") if d["name"] == "shed-pi"):
                assert time.monotonic() < deadline, "a silent worker stayed online"
                time.sleep(0.5)
        finally:
            os.kill(worker.proc.pid, signal.SIGCONT)
