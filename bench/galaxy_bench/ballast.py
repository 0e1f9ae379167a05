"""Ballasts: one spinning process per emulated device, stopped except while the device's compute
thread waits on the ring (`galaxy bench --ballast`; edge_worker/comm/waits.py says why).

Each goes into its device's CPU group beside the compute thread (`Home.throttle`), so a wait
spends the device's quota as time passes on a slow CPU, instead of leaving it for a burst at a
whole core's speed afterwards. The worker learns its ballast's pid from GALAXY_DEV_BALLAST_PID
(`Home.prefix`) and sends it SIGCONT when its compute thread blocks, SIGSTOP when it resumes.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from pathlib import Path

from galaxy_bench.errors import EmulationError

# Stops itself at once; spins only when sent SIGCONT.
LOOP = "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\nwhile True:\n    pass\n"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Ballasts:
    """One ballast per device, started by `Home` on entry and killed on close (or with the
    bench's process, should it die first)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, n: int) -> None:
        """`n` ballasts, each stopped before this returns."""
        for _ in range(n):
            proc = subprocess.Popen([sys.executable, "-c", LOOP], preexec_fn=_die_with_parent)
            self.procs.append(proc)
            deadline = time.monotonic() + 10
            while process_state(proc.pid) != "T":
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise EmulationError(f"ballast {proc.pid} did not start and stop itself")
                time.sleep(0.01)

    def pid(self, i: int) -> int:
        return self.procs[i].pid

    def close(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            proc.kill()
            proc.wait()


def process_state(pid: int) -> str:
    """A process's state letter from /proc (T: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def env_prefix(pid: int) -> list[str]:
    """The command prefix that tells a worker its ballast."""
    return ["env", f"GALAXY_DEV_BALLAST_PID={pid}"]
