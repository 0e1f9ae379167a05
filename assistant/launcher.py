"""Start a gateway and paired worker processes on this machine (the demo and the tests).

with RunningGateway(settings) as gw:                  # uvicorn on a free port, in a thread
    workers = gw.add_workers(["kitchen-pi", "laptop"], data_dir)   # real pairing codes
    gw.wait_online(["kitchen-pi", "laptop"])
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from assistant.cluster.remote import WorkerProcess
from assistant.config import Settings
from assistant.main import create_app
from edge_worker.errors import GalaxyError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RunningGateway:
    def __init__(self, settings: Settings) -> None:
        if settings.port == 0:
            settings = settings.model_copy(update={"port": free_port(settings.host)})
        self.settings = settings
        self.app = create_app(settings)
        self.state = self.app.state.gateway
        self.token = self.state.first_token
        config = uvicorn.Config(
            self.app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            ws_per_message_deflate=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)
        self.workers: list[WorkerProcess] = []

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def __enter__(self) -> RunningGateway:
        self.thread.start()
        deadline = time.monotonic() + 180
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise GalaxyError("the gateway did not start; see the log above")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        for w in self.workers:
            w.kill()
        self.server.should_exit = True
        self.thread.join(30)

    def call(self, method: str, path: str, body: Any = None, token: str | None = "default") -> Any:
        """One API call; returns the decoded JSON (raises urllib.error.HTTPError on 4xx/5xx)."""
        req = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
        )
        req.add_header("Content-Type", "application/json")
        tok = self.token if token == "default" else token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.loads(resp.read())

    def add_workers(
        self, names: list[str], data_dir: Path, threads: int = 1, extra: Sequence[str] = ()
    ) -> list[WorkerProcess]:
        """Start one worker process per name, each paired with its own one-time code;
        `extra` are more `galaxy worker` options."""
        started = []
        for name in names:
            code = self.call("POST", "/v1/pairing/codes")["code"]
            wdir = data_dir / name
            wdir.mkdir(parents=True, exist_ok=True)
            log_path = wdir / "worker.log"
            cmd = [
                sys.executable,
                "-m",
                "assistant.cli",
                "worker",
                "--gateway",
                self.url,
                "--name",
                name,
                "--pairing-code",
                code,
                "--data-dir",
                str(wdir),
                "--threads",
                str(threads),
                *extra,
            ]
            with open(log_path, "wb") as logf:
                proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
            started.append(WorkerProcess(name, proc, log_path))
        self.workers += started
        return started

    def wait_online(self, names: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            online = {d["name"] for d in self.call("GET", "/v1/devices") if d["online"]}
            if set(names) <= online:
                return
            for w in self.workers:
                if w.proc.poll() is not None and w.name in names:
                    raise GalaxyError(f"worker {w.name} exited: {w.log_path.read_text()[-600:]}")
            time.sleep(0.3)
        raise GalaxyError(f"workers {names} did not come online within {timeout:.0f} s")
