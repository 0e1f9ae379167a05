"""A worker lost in the middle of a request does not lose the request."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from assistant.launcher import RunningGateway
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_api import reference_tokens


def test_killing_a_worker_during_generate_still_returns_the_right_answer(tmp_path: Path) -> None:
    prompt = "List five things to pack for a picnic."
    with RunningGateway(gateway_settings(tmp_path)) as gw:
        workers = gw.add_workers(["kitchen-pi", "laptop"], tmp_path / "workers")
        gw.wait_online(["kitchen-pi", "laptop"])
        answer: dict[str, Any] = {}

        def ask() -> None:
            answer.update(gw.call("POST", "/v1/generate", {"prompt": prompt, "max_new_tokens": 40}))

        t = threading.Thread(target=ask)
        t.start()
        deadline = time.monotonic() + 120
        while "smollm2-135m" not in gw.call("GET", "/v1/plan")["plans"]:
            assert time.monotonic() < deadline, "the request never started"
            time.sleep(0.1)
        time.sleep(1.0)  # into the prefill or the decode steps
        workers[1].proc.kill()
        t.join(300)

        assert answer["tokens"] == reference_tokens(gw, prompt, 40)
        failovers = answer["timings"]["failovers"]
        assert failovers and failovers[0]["lost"] == ["laptop"]
        assert answer["plan"]["devices"] == ["kitchen-pi"]
        assert "laptop" not in gw.state.manager.online()
