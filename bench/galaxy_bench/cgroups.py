"""CPU quotas per emulated device: one cgroup v1 `cpu` group each.

Group gx<pid>-d<i> under this process's own cpu cgroup gets period `cfs_period_us` and quota
speed x period (at least the kernel's 1 ms); or, given `slice_us`, quota `slice_us` and period
slice / speed. A quota is a duty cycle, not a slower CPU: a thread that waits early in a period
runs the rest of it at a whole core's speed until its quota is spent, so the smaller the slice,
the nearer the emulation comes to a device that is slow all the time (the kernel's 1 ms is
the smallest). `throttle` moves either only the device's
compute thread (a tid into `tasks`: its socket threads are not starved) or every thread of
its process (`cgroup.procs`). cgroup v2's cpu.max is not supported; needs root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from galaxy_bench.errors import EmulationError

__all__ = ["CpuQuotas", "cpu_cgroup_dir", "remove_stale"]

log = logging.getLogger(__name__)


def cpu_cgroup_dir() -> Path | str:
    """This process's cgroup v1 cpu directory, or the reason there is none usable."""
    mount: tuple[str, str] | None = None  # (root inside the hierarchy, mount point)
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            pre, _, post = line.partition(" - ")
            fields, tail = pre.split(), post.split()
            if len(tail) >= 3 and tail[0] == "cgroup" and "cpu" in tail[2].split(","):
                mount = (fields[3], fields[4])
    if mount is None:
        return "no cgroup v1 cpu controller is mounted (cgroup v2 cpu.max is not supported)"
    own = "/"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(","):
                own = path
    rel = os.path.relpath(own, mount[0]) if own.startswith(mount[0]) else "."
    base = Path(mount[1]) / rel
    if not (base / "cpu.cfs_quota_us").exists():
        return f"{base} has no cpu.cfs_quota_us (kernel without CONFIG_CFS_BANDWIDTH?)"
    if not os.access(base, os.W_OK):
        return f"cannot create cgroups under {base} (not root?)"
    return base


def _release(d: Path, timeout: float = 2.0) -> None:
    """Move d's threads back to its parent group, then remove d."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            for tid in (d / "tasks").read_text().split():
                with contextlib.suppress(OSError):  # ESRCH: it exited meanwhile
                    (d.parent / "tasks").write_text(tid)
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def remove_stale(stale: Callable[[str], bool]) -> list[str]:
    """Release and remove the cpu cgroups whose names `stale` accepts; returns their paths."""
    base, removed = cpu_cgroup_dir(), []
    if isinstance(base, Path):
        for d in base.iterdir():
            if d.is_dir() and stale(d.name):
                with contextlib.suppress(OSError):
                    _release(d)
                    removed.append(str(d))
    return removed


class CpuQuotas:
    """One cpu cgroup per device, capped at `speeds[i]` cores (see module docstring)."""

    def __init__(
        self,
        tag: str,
        speeds: Sequence[float],
        cfs_period_us: int = 10_000,
        slice_us: int | None = None,
    ) -> None:
        if not 1000 <= cfs_period_us <= 1_000_000:
            raise ValueError(f"cfs_period_us must be 1000..1000000 us, got {cfs_period_us}")
        if slice_us is not None and not 1000 <= slice_us <= min(speeds, default=1) * 1_000_000:
            raise ValueError(f"slice_us must be 1000 us .. speed x 1 s, got {slice_us}")
        self.tag, self.speeds, self.cfs_period_us = tag, list(speeds), cfs_period_us
        self.slice_us = slice_us
        self.groups: list[Path] = []
        self.throttled: list[list[dict[str, int]]] = [[] for _ in self.speeds]

    def quota_us(self, i: int) -> int:
        """Device i's CPU time per period (us); the kernel's minimum is 1 ms."""
        if self.slice_us is not None:
            return self.slice_us
        return max(1000, round(self.speeds[i] * self.cfs_period_us))

    def period_us(self, i: int) -> int:
        """Device i's quota period (us)."""
        if self.slice_us is not None:
            return round(self.slice_us / self.speeds[i])
        return self.cfs_period_us

    def set_up(self) -> None:
        """Create the groups; raises OSError (call `close` to undo a partial set-up)."""
        base = cpu_cgroup_dir()
        if isinstance(base, str):
            raise OSError(base)
        for i in range(len(self.speeds)):
            d = base / f"{self.tag}-d{i}"
            d.mkdir()
            self.groups.append(d)
            (d / "cpu.cfs_period_us").write_text(str(self.period_us(i)))
            (d / "cpu.cfs_quota_us").write_text(str(self.quota_us(i)))

    def throttle(
        self, i: int, pid: int, compute_tid: int, what: Literal["thread", "process"]
    ) -> None:
        """Move thread `compute_tid` of process `pid` (what="thread"), or every thread of
        `pid` (what="process"), into device i's group."""
        if not self.groups:
            raise RuntimeError("throttle() works only inside `with Home(...)`")
        if not Path(f"/proc/{pid}/task/{compute_tid}").exists():
            raise EmulationError(f"thread {compute_tid} of process {pid} does not exist")
        d = self.groups[i]
        target, value = (
            (d / "tasks", compute_tid) if what == "thread" else (d / "cgroup.procs", pid)
        )
        try:
            target.write_text(str(value))
        except OSError as exc:
            raise EmulationError(f"could not move {value} into {target}: {exc}") from exc
        self.throttled[i].append({"pid": pid, "tid": compute_tid})

    def close(self) -> None:
        """Release and remove every group (idempotent; logs what it could not)."""
        while self.groups:
            d = self.groups.pop()
            try:
                _release(d)
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", d, exc)
