"""Blocking access to worker processes: launch them, deploy a plan, run prefill and decode.

`RemoteCluster` offers the same calls as the in-process `InProcessCluster` (`prefill`,
`decode`, `prefill_last_logits`), so `galaxy verify --transport tcp`, generation and the
benchmark drive real processes with the same code. The coordinator's asyncio loop runs on a
background thread; each call blocks until every rank has answered or one is lost.

The workers started here (`worker_command`, `launch_workers`, `local_workers`) run with
`galaxy worker --development`: they serve this unauthenticated ws:// coordinator, may emulate a
slower device by sleeping, and send their process and compute-thread ids. That is for
`galaxy verify` and `galaxy bench` only; the gateway's workers pair and use mutual TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from torch import Tensor

from assistant.cluster.coordinator import Coordinator
from assistant.cluster.session import RankResult
from edge_worker.engine.model import RankOutput
from edge_worker.engine.runtime import Output, assemble
from edge_worker.engine.weights import ModelWeights
from edge_worker.errors import GalaxyError
from edge_worker.service import protocol as P
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, validate

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def worker_command(
    url: str,
    name: str,
    data_dir: Path,
    threads: int = 1,
    data_host: str = "127.0.0.1",
    speed: float = 1.0,
    max_deployments: int = 12,
    shard_cache: int = 16,
    shard_cache_mb: float = 4096.0,
) -> list[str]:
    """The command line of a development worker (see module docstring) serving `url`."""
    return [
        sys.executable,
        "-m",
        "assistant.cli",
        "worker",
        "--development",
        "--gateway",
        url,
        "--name",
        name,
        "--data-dir",
        str(data_dir),
        "--threads",
        str(threads),
        "--data-host",
        data_host,
        "--speed",
        str(speed),
        "--max-deployments",
        str(max_deployments),
        "--shard-cache",
        str(shard_cache),
        "--shard-cache-mb",
        str(shard_cache_mb),
    ]


def launch_workers(
    url: str,
    names: Sequence[str],
    data_dir: Path,
    *,
    threads: int = 1,
    prefix: Sequence[Sequence[str]] | None = None,
    hosts: Sequence[str] | None = None,
    speeds: Sequence[float] | None = None,
    max_deployments: int = 12,
    shard_cache: int = 16,
    shard_cache_mb: float = 4096.0,
) -> list[WorkerProcess]:
    """Start one `galaxy worker` process per name; `prefix[i]` wraps worker i's command (e.g.
    `nsenter --net=...`), `hosts[i]` is its data-plane address, `speeds[i]` its sleep-based
    slowdown. Each worker logs to `data_dir/<name>/worker.log`."""
    procs = []
    for i, name in enumerate(names):
        wdir = data_dir / name
        wdir.mkdir(parents=True, exist_ok=True)
        log_path = wdir / "worker.log"
        cmd = [
            *(prefix[i] if prefix else ()),
            *worker_command(
                url,
                name,
                wdir,
                threads,
                hosts[i] if hosts else "127.0.0.1",
                speeds[i] if speeds else 1.0,
                max_deployments,
                shard_cache,
                shard_cache_mb,
            ),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        procs.append(WorkerProcess(name, proc, log_path))
    return procs


@dataclass
class RemoteCluster:
    """A deployed plan on worker processes, driven from a background event loop."""

    coordinator: Coordinator
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread | None = None  # None: the loop belongs to someone else (gateway)
    plan: ParallelPlan | None = None
    plan_id: str | None = None
    last: list[RankResult] = field(default_factory=list)
    processes: list[WorkerProcess] = field(default_factory=list)

    @classmethod
    def start(cls, host: str = "127.0.0.1", timeout: float = 120.0) -> RemoteCluster:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="coordinator", daemon=True)
        thread.start()
        coordinator = Coordinator(host, 0, timeout)
        cluster = cls(coordinator, loop, thread)
        cluster.call(coordinator.start())
        return cluster

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the coordinator's event loop and wait for its result (the blocking
        side of every call below; tests use it to reach the coordinator directly)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return self.coordinator.url

    def wait_for_workers(self, n: int, timeout: float = 60.0) -> list[P.Hello]:
        sessions = self.call(self.coordinator.wait_for_workers(n, timeout))
        return [s.hello for s in sessions]

    def deploy(
        self,
        cfg: ModelConfig,
        weights: ModelWeights,
        plan: ParallelPlan,
        names: Sequence[str],
        plain_ring: bool = False,
    ) -> list[P.Ready]:
        """Assign ranks to the named workers (ring order = `names` order) and ship shards.
        `plain_ring`: no TLS on the ring even for workers with credentials (development)."""
        validate(cfg, plan)
        sessions = [self.coordinator.sessions[n] for n in names]
        deploying = self.coordinator.deploy(cfg, weights, plan, sessions, plain_ring)
        self.plan_id, readies = self.call(deploying)
        self.plan = plan
        return readies

    def profile(self, name: str, request: P.Profile) -> P.ProfileResult:
        return self.call(self.coordinator.profile(self.coordinator.sessions[name], request))

    def probe_links(
        self, names: Sequence[str], nbytes: int = 4 << 20, timeout: float | None = None
    ) -> dict[str, tuple[float, float]]:
        """Measure the data plane of the named workers with a short-lived ring in `names`
        order, moving `nbytes` per hop: per device (link Mbit/s, per-hop latency ms), as
        `Coordinator.probe_links` says. Blocks up to `timeout` seconds (None: no limit);
        fewer than two workers give {}."""
        sessions = [self.coordinator.sessions[n] for n in names]
        return self.call(self.coordinator.probe_links(sessions, nbytes=nbytes), timeout=timeout)

    def _run(
        self, op: Literal["prefill", "decode"], ids: Tensor, **kwargs: Any
    ) -> list[RankOutput | None]:
        if self.plan_id is None:
            raise GalaxyError("deploy a plan before running requests")
        self.last = self.call(self.coordinator.run(self.plan_id, op, ids, **kwargs))
        outs: list[RankOutput | None] = []
        for r in self.last:
            if not r.result.tensors:
                outs.append(None)
                continue
            seq = range(r.result.seq_start, r.result.seq_stop)
            outs.append(RankOutput(seq, r.tensors.get("hidden"), r.tensors.get("logits")))
        return outs

    def prefill(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        want: str = "hidden",
        session: str = "",
    ) -> Output:
        return assemble(
            self._run(
                "prefill",
                input_ids,
                want=want,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                session=session,
            )
        )

    def prefill_last_logits(self, input_ids: Tensor, session: str = "") -> Tensor:
        out = self.prefill(input_ids, want="last_logits", session=session)
        assert out.logits is not None
        return out.logits[:, -1]

    def decode(self, token_ids: Tensor, session: str = "") -> Tensor:
        out = assemble(self._run("decode", token_ids, session=session))
        assert out.logits is not None
        return out.logits[:, -1]

    def close(self) -> None:
        if self.thread is None:
            return  # a borrowed loop and coordinator: their owner stops them
        with contextlib.suppress(Exception):
            self.call(self.coordinator.stop(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def __enter__(self) -> RemoteCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def local_workers(
    n: int,
    *,
    threads: int = 1,
    prefix: Sequence[Sequence[str]] | None = None,
    host: str = "127.0.0.1",
    data_dir: Path | None = None,
) -> Iterator[tuple[RemoteCluster, list[str]]]:
    """A coordinator plus `n` worker processes on this machine, torn down on exit."""
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="galaxy-workers-")
        data_dir = Path(tmp.name)
    cluster = RemoteCluster.start(host)
    names = [f"worker-{i}" for i in range(n)]
    procs = launch_workers(cluster.url, names, data_dir, threads=threads, prefix=prefix)
    try:
        try:
            cluster.wait_for_workers(n, timeout=60)
        except GalaxyError as exc:
            dead = [p for p in procs if p.proc.poll() is not None]
            detail = "; ".join(f"{p.name}: {p.log_path.read_text()[-400:]}" for p in dead)
            raise GalaxyError(f"workers did not start: {exc} {detail}") from None
        cluster.processes = procs
        yield cluster, names
    finally:
        cluster.close()
        for p in procs:
            p.kill()
        if tmp is not None:
            tmp.cleanup()
