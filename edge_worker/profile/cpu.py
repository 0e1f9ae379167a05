"""How much CPU this worker process may use, in cores: what its ring's threads share.

`process_cores()` is the smaller of the CPUs the process may run on (its affinity) and the CPU
quota of its cgroup and every ancestor (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` over
`cpu.cfs_period_us`): a container started with `--cpus 1.5` reads 1.5, a Raspberry Pi 4
reads 4. The gateway's cost model uses it to tell whether the ring has a core of its own or
takes its CPU from the compute (`assistant/planner/profiles.py` `ring_cpu_cost`). It reads
the process's cgroup (its first thread's), so a quota on the compute thread alone, as
`galaxy bench --throttle thread` sets, leaves the ring free, as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def process_cores() -> float:
    """The CPU this process may use, in cores (affinity, capped by its cgroups' quotas)."""
    try:
        cores = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        cores = float(os.cpu_count() or 1)
    quota = cgroup_quota()
    return min(cores, quota) if quota is not None else cores


def cgroup_quota(proc: Path = Path("/proc/self")) -> float | None:
    """The tightest CPU quota (cores) over this process's cgroup and its ancestors, or None."""
    try:
        lines = (proc / "cgroup").read_text().splitlines()
        mounts = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        hier, controllers, path = line.split(":", 2)
        if hier == "0" and controllers == "":  # cgroup v2
            quotas += _walk(CGROUP_ROOT, path, _v2)
        elif "cpu" in controllers.split(","):  # cgroup v1's cpu controller
            mount = _v1_mount(mounts)
            if mount is not None:
                root, point = mount
                rel = path[len(root) :] if path.startswith(root) else path
                quotas += _walk(Path(point), rel, _v1)
    return min(quotas) if quotas else None


def _walk(base: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """Quotas of the group at `path` under `base` and of each ancestor up to `base`."""
    out = []
    parts = [p for p in path.strip("/").split("/") if p]
    for depth in range(len(parts), -1, -1):
        quota = read(base.joinpath(*parts[:depth]))
        if quota is not None:
            out.append(quota)
    return out


def _v2(group: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota, period = (group / "cpu.max").read_text().split()
        if quota != "max":
            return int(quota) / int(period)
    return None


def _v1(group: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota = int((group / "cpu.cfs_quota_us").read_text())
        if quota > 0:
            return quota / int((group / "cpu.cfs_period_us").read_text())
    return None


def _v1_mount(mountinfo: list[str]) -> tuple[str, str] | None:
    """(root inside the hierarchy, mount point) of the cgroup v1 cpu controller."""
    for line in mountinfo:
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(tail) >= 3 and tail[0] == "cgroup" and "cpu" in tail[2].split(","):
            return fields[3], fields[4]
    return None
