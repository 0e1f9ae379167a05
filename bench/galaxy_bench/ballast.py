"""Ballasts: one spinning process per emulated device, stopped except while the device's compute
thread waits on the ring (`galaxy bench --ballast`; edge_worker/comm/waits.py says why).

Each goes into its device's CPU group beside the compute thread (`Home.throttle`), so a wait
spends the device's quota as time passes on a slow CPU, instead of leaving it for a burst at a
whole core's speed afterwards. The worker learns its ballast's pid from GALAXY_DEV_BALLAST_PID
(`Home.prefix`) and sends it SIGCONT when its compute thread blocks, SIGSTOP when it resumes.

The ballasts spin on the machine's last CPU, and `Home.throttle` keeps every other thread of a
worker (the ring's link threads, its event loop) off it; only the compute threads may go
anywhere. Spinning on any CPU, the ballasts (other devices' time) sat where a link thread woke
to move the next chunk. Kept apart, hmp waited 2331 and 2385 ms on the ring per request in two
runs against 3016 in a run between them (bench/RESULTS.md, "12-07, night"). The links may
still probe slower than without ballasts (0.4-3 ms in three runs, against 0.2-0.5): a device
whose quota its ballast spent during a wait resumes only at the next quota period.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from galaxy_bench.errors import EmulationError

# Pins itself to the CPU in argv[1] and stops itself at once; spins only when sent SIGCONT.
LOOP = (
    "import os, signal, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "os.kill(os.getpid(), signal.SIGSTOP)\nwhile True:\n    pass\n"
)
_PR_SET_PDEATHSIG = 1
BALLAST_CPU = max(os.sched_getaffinity(0))


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Ballasts:
    """One ballast per device, started by `Home` on entry and killed on close (or with the
    bench's process, should it die first)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, n: int) -> None:
        """`n` ballasts on the last CPU (`BALLAST_CPU`), each stopped before this returns."""
        for _ in range(n):
            proc = subprocess.Popen(
                [sys.executable, "-c", LOOP, str(BALLAST_CPU)], preexec_fn=_die_with_parent
            )
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


def keep_off_ballasts(pid: int, compute_tid: int) -> None:
    """Every thread of worker `pid` but its compute thread kept off the ballasts' CPU (those
    it starts later inherit that); the compute thread may run anywhere."""
    everywhere = os.sched_getaffinity(0)
    others = everywhere - {BALLAST_CPU}
    if not others:
        return  # one CPU: nowhere else to go
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        with contextlib.suppress(ProcessLookupError):  # (a thread that has just ended)
            os.sched_setaffinity(tid, everywhere if tid == compute_tid else others)


def process_state(pid: int) -> str:
    """A process's state letter from /proc (T: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def env_prefix(pid: int) -> list[str]:
    """The command prefix that tells a worker its ballast."""
    return ["env", f"GALAXY_DEV_BALLAST_PID={pid}"]
