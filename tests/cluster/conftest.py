"""Fixtures that start real worker processes on loopback, and in-process workers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.cluster.remote import RemoteCluster, local_workers
from edge_worker.service.worker import Worker


@pytest.fixture(scope="module")
def three_workers() -> Iterator[tuple[RemoteCluster, list[str]]]:
    with local_workers(3) as (cluster, names):
        yield cluster, names


@contextlib.contextmanager
def in_process_workers(
    root: Path, n: int, timeout: float = 120.0, **worker: Any
) -> Iterator[RemoteCluster]:
    """A coordinator (`timeout`: its wait for any reply) with workers w0..w{n-1} serving it on
    one event loop in a thread of this process (`worker`: more `Worker` options), so a test
    may patch either side."""
    workers = [Worker(f"w{i}", root / f"w{i}", **worker) for i in range(n)]
    with RemoteCluster.start(timeout=timeout) as cluster:

        async def serve_all() -> None:
            await asyncio.gather(*(w.serve(cluster.url) for w in workers))

        serving = threading.Thread(target=asyncio.run, args=(serve_all(),), daemon=True)
        serving.start()
        cluster.wait_for_workers(n, timeout=30)
        yield cluster
    serving.join(10)
    for w in workers:
        w.compute.shutdown()
