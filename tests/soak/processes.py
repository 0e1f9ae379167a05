"""`galaxy gateway` and `galaxy worker` as real processes, for the tests that kill them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from assistant.launcher import free_port
from edge_worker.service.credentials import Credentials

TOKEN = re.compile(r"API token \(shown once, stored hashed\): (\S+)")


class GatewayProcess:
    """A `galaxy gateway` process with a fixed data dir and API port, started again at will;
    its log (every start appended) is `root/gateway.log`."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root, self.port, self.env = root, free_port(), env
        self.log_path = root / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **env: str) -> None:
        """Start and wait until the API answers; `env` adds GALAXY_* variables to this start."""
        variables = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GALAXY_PORT": str(self.port),
            "GALAXY_DATA_DIR": str(self.root / "gateway"),
            "GALAXY_STRATEGY": "hmp",
            **self.env,
            **env,
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "assistant.cli", "gateway"],
                env=variables,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the gateway did not answer in 240 s"
                time.sleep(0.3)
        if self.token is None:
            found = TOKEN.search(self.log_path.read_text())
            assert found is not None, "the first start printed no API token"
            self.token = found.group(1)

    def stop(self, sig: signal.Signals) -> None:
        """SIGKILL (a crash) or SIGTERM (a clean stop), and wait for the process to end."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(60)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
        )
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=300) as resp:
            return json.loads(resp.read())

    def online(self) -> set[str]:
        return {d["name"] for d in self.call("GET", "/v1/devices") if d["online"]}

    def wait_online(self, names: set[str], timeout: float = 120) -> float:
        """Seconds until every one of `names` is online."""
        started = time.monotonic()
        while not names <= self.online():
            assert time.monotonic() - started < timeout, f"{names} not online in {timeout:.0f} s"
            time.sleep(0.3)
        return time.monotonic() - started

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


class WorkerProcess:
    """A `galaxy worker` process paired with `gateway` by a one-time code."""

    def __init__(self, gateway: GatewayProcess, name: str, root: Path) -> None:
        self.name, self.data_dir = name, root / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "worker.log"
        code = gateway.call("POST", "/v1/pairing/codes")["code"]
        cmd = [
            *(sys.executable, "-m", "assistant.cli", "worker", "--gateway", gateway.url),
            *("--name", name, "--pairing-code", code, "--data-dir", str(self.data_dir)),
            *("--threads", "1"),
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def credentials(self) -> Credentials:
        creds = Credentials.load(self.data_dir / "credentials")
        assert creds is not None, f"{self.name} is not paired"
        return creds

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
