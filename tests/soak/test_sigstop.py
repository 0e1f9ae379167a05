"""A worker frozen (SIGSTOP) in the middle of a generation: its control link stops answering
heartbeats, the gateway takes it offline, and the request in flight is re-run on the other
workers to the right answer. Thawed (SIGCONT), the worker finds its link gone and rejoins."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Settings
from assistant.launcher import RunningGateway
from galaxy_bench.soak_traffic import References, Request
from tests.soak.conftest import MAX_NEW_TOKENS

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(900)]
NAMES = ["hall-pi", "den-pc", "attic-nas"]


def test_a_frozen_worker_is_taken_offline_and_its_request_re_run(
    tmp_path: Path, references: References
) -> None:
    settings = Settings(
        port=0,
        data_dir=tmp_path / "gateway",
        strategy="hmp",
        max_new_tokens=64,
        request_timeout_s=240,
    )
    request = Request("generate", 1)
    path, body = request.body(MAX_NEW_TOKENS)
    with RunningGateway(settings) as gw:
        workers = gw.add_workers(NAMES, tmp_path / "workers")
        gw.wait_online(NAMES)
        assert references.right(request, gw.call("POST", path, body))  # plans made
        assert gw.call("GET", "/v1/plan")["plans"]["smollm2-135m"]["devices"] == sorted(NAMES)
        victim = workers[1]
        manager = gw.state.manager
        _wait(lambda: manager.replan_status["state"] == "idle", "the plans settled")
        answer: dict[str, Any] = {}
        ask = threading.Thread(target=lambda: answer.update(gw.call("POST", path, body)))

        ask.start()  # frozen while it has a run of the request in hand:
        session = manager.coordinator.sessions[victim.name]
        _wait(lambda: session.running is not None, "the request reached the victim")
        os.kill(victim.proc.pid, signal.SIGSTOP)
        try:
            ask.join(300)
            assert not ask.is_alive(), "the request hung"
            assert references.right(request, answer), answer
            failovers = answer["timings"]["failovers"]
            assert failovers and failovers[0]["lost"] == [victim.name], failovers
            assert victim.name not in answer["plan"]["devices"]
            assert victim.name not in gw.state.manager.online()
        finally:
            os.kill(victim.proc.pid, signal.SIGCONT)

        gw.wait_online(NAMES, timeout=120)  # the same process, back by itself
        assert victim.proc.poll() is None
        assert references.right(request, gw.call("POST", path, body))


def _wait(ready: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.01)
