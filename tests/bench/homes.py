"""Worker processes on the devices of an emulated home (each in its own network namespace)."""

from __future__ import annotations

from pathlib import Path

from assistant.cluster.remote import RemoteCluster, WorkerProcess, launch_workers
from galaxy_bench.emulation import Home


def launch_in_home(home: Home, cluster: RemoteCluster, data_dir: Path) -> list[WorkerProcess]:
    """One development worker per device of `home`, inside its namespace, serving `cluster`."""
    n = len(home.devices)
    return launch_workers(
        cluster.url,
        [d.name for d in home.devices],
        data_dir,
        prefix=[home.prefix(i) for i in range(n)],
        hosts=[home.device_host(i) for i in range(n)],
    )
