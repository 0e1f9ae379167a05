"""This machine as the emulation sees it: root commands, owned names, one lock.

Every object an emulated home creates (namespace, host veth, cgroup) is named gx<pid>...
after the process that made it, so `stale` can tell the leftovers of a finished run from
the objects of a live one.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from galaxy_bench.errors import EmulationError

__all__ = ["machine_lock", "pid_alive", "run", "stale_names"]

_OWNED = re.compile(r"^gx(\d+)(?:-hub|-d\d+|h)$")  # gx<pid>-hub, gx<pid>-d<i>, gx<pid>h
_LOCK_PATH = Path("/run/gx-home.lock")
_CMD_TIMEOUT_S = 10.0


def run(cmd: str | Sequence[str]) -> str:
    """Run a command (a string is split on spaces), return its stdout or raise EmulationError."""
    args = cmd.split() if isinstance(cmd, str) else list(cmd)
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=_CMD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulationError(f"`{' '.join(args)}` failed: {exc}") from exc
    if out.returncode != 0:
        raise EmulationError(f"`{' '.join(args)}` failed: {out.stderr.strip() or out.returncode}")
    return out.stdout


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def stale_names(me: int, include_live: bool = False) -> Callable[[str], bool]:
    """A predicate: is this name an emulation object of another process that is gone (or of
    any other process, with `include_live`)?"""

    def stale(name: str) -> bool:
        m = _OWNED.match(name)
        if m is None or int(m.group(1)) == me:
            return False
        return include_live or not pid_alive(int(m.group(1)))

    return stale


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Serialise set-up and clean-up between Homes of concurrent processes."""
    with open(_LOCK_PATH, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
