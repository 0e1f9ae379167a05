"""`galaxy gateway` takes its settings from GALAXY_* variables; a flag given on the command line
wins over its variable (README, "Settings")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from assistant.launcher import free_port


def start_gateway(env: dict[str, str], *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "gateway", *flags],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def health(port: int, proc: subprocess.Popen[bytes], timeout: float = 180) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2) as r:
                answer: dict[str, object] = json.loads(r.read())
                return answer
        except (urllib.error.URLError, OSError):
            assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()
            assert time.monotonic() < deadline, f"nothing answered on port {port}"
            time.sleep(0.5)


def test_galaxy_port_sets_the_gateway_port(tmp_path: Path) -> None:
    port = free_port()
    proc = start_gateway({"GALAXY_PORT": str(port), "GALAXY_DATA_DIR": str(tmp_path)})
    try:
        answer = health(port, proc)
    finally:
        proc.terminate()
        proc.wait(30)

    assert answer["status"] == "ok"


def test_a_port_flag_wins_over_galaxy_port(tmp_path: Path) -> None:
    flag_port, env_port = free_port(), free_port()
    proc = start_gateway(
        {"GALAXY_PORT": str(env_port), "GALAXY_DATA_DIR": str(tmp_path)}, "--port", str(flag_port)
    )
    try:
        answer = health(flag_port, proc)
    finally:
        proc.terminate()
        proc.wait(30)

    assert answer["status"] == "ok"
