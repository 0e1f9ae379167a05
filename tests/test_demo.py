"""`galaxy demo` as `make demo` runs it: a real gateway, two real worker processes, the
packaged models; it answers, speaks a command, serves the API, and stops its workers with it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.launcher import free_port

pytestmark = pytest.mark.slow


def processes_naming(text: str) -> list[int]:
    """Pids of the processes whose command line contains `text`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.mark.timeout(420)
def test_the_demo_answers_speaks_serves_and_stops_its_workers_on_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "GALAXY_WYOMING_PORT": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "demo", "--port", str(port), "--max-tokens", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    out: list[str] = []
    root = ""
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith("serving at "):
                break
        text = "".join(out)
        assert "serving at " in text, text
        root = re.search(r"\(data in (\S+)\)", text).group(1)  # type: ignore[union-attr]
        token = re.search(r"API token \(shown once\): (\S+)", text).group(1)  # type: ignore[union-attr]
        assert re.search(r"^A: \S", text, re.M), text
        assert "transcript: 'Turn on the kitchen lights.'" in text, text
        assert "changed: light.kitchen_ceiling on: False -> True" in text, text
        assert len(processes_naming(root + "/workers/")) == 2

        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/assist",
            data=json.dumps({"text": "turn off the kitchen lights"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            reply = json.load(resp)
        assert reply["intent"]["name"] == "HassTurnOff"
        assert {c["device"] for c in reply["changes"]} == {
            "light.kitchen_ceiling",
            "light.kitchen_counter",
        }

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        deadline = time.monotonic() + 10
        while processes_naming(root + "/workers/") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_naming(root + "/workers/") == [], "the demo's workers outlived it"
    finally:
        proc.kill()
        proc.wait()
        for pid in processes_naming(root + "/workers/") if root else []:
            os.kill(pid, signal.SIGKILL)
        if root:
            shutil.rmtree(root, ignore_errors=True)
