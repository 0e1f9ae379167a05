"""Development-only worker modes (`galaxy worker --development`) that the bench and
`galaxy verify --transport tcp` rely on, and that a product worker refuses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.cluster.remote import worker_command
from edge_worker.service.worker import Worker


@pytest.fixture(autouse=True)
def _keep_switch_interval() -> Iterator[None]:
    """A Worker shortens the GIL switch interval for its process; not for the test run's."""
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def galaxy_worker(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "assistant.cli", "worker", "--name", "dev-test"]
    cmd += ["--data-dir", str(tmp_path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_a_product_worker_sends_no_process_ids(tmp_path: Path) -> None:
    worker = Worker("kitchen-pi", tmp_path)

    hello = worker.hello()

    assert hello.dev is None


def test_a_development_worker_sends_its_process_and_compute_thread_ids(tmp_path: Path) -> None:
    worker = Worker("kitchen-pi", tmp_path, development=True)

    hello = worker.hello()

    assert hello.dev is not None
    assert hello.dev.pid == os.getpid()
    assert hello.dev.compute_tid == worker.compute_tid
    assert hello.dev.compute_tid != threading.get_native_id()  # the compute thread, not ours


def test_a_product_worker_refuses_sleep_emulation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--development"):
        Worker("kitchen-pi", tmp_path, speed=0.5)


def test_the_worker_command_refuses_speed_below_one_without_development(tmp_path: Path) -> None:
    done = galaxy_worker(tmp_path, "--gateway", "http://127.0.0.1:9", "--speed", "0.5")

    assert done.returncode == 2
    assert "--development" in done.stderr and "sleeping" in done.stderr


def test_the_worker_command_refuses_a_ws_coordinator_without_development(tmp_path: Path) -> None:
    done = galaxy_worker(tmp_path, "--gateway", "ws://127.0.0.1:9")

    assert done.returncode == 2
    assert "--development" in done.stderr and "without pairing" in done.stderr


def test_workers_started_for_verify_and_bench_run_in_development_mode(tmp_path: Path) -> None:
    cmd = worker_command("ws://127.0.0.1:9", "w0", tmp_path, speed=0.5)

    assert "--development" in cmd
