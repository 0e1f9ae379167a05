"""The compute thread's waits on the ring and hand-offs to it, for the bench's emulations of
a slow device. Without either, a wait or a hand-off costs a check or two.

`galaxy bench --ballast` emulates a slow device with a CPU quota on its compute thread. A quota
is a duty cycle: a thread that blocks on the ring does not spend it, and afterwards computes at
a whole core's speed until the period's quota is gone, which a device slow all the time cannot.
So the bench starts a spinning process (the ballast) in the same CPU group, stopped, and a
worker started with GALAXY_DEV_BALLAST_PID set lets it run exactly while the compute thread
blocks on the ring: the device's quota is then spent while it waits, as time passes on a slow
CPU.

`galaxy bench --throttle sleep` (a development worker's `--speed S`) stretches time instead:
the compute thread runs at the machine's speed, and before anything it computed leaves it (a
collective or a partial handed to the ring, a wait on the ring that has to block, a layer's or
a run's end) it sleeps until the wall time a device S times as fast would have taken for the
CPU time it used since the last such point. A result already there when asked for is no such
point: the compute carries on, owed at the next one (fewer sleeps, the same timeline). Others
see its results when a slow device would have sent them, a wait costs what it lasts, and no
quota period quantises when its work ends; but it caps no CPU (the bench's labels say so).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

_hooks: list[tuple[Callable[[], None], Callable[[], None]]] = []
_stretch: Stretch | None = None  # this process's stretched compute thread, if any


class Stretch:
    """Thread `tid` computing as a device `speed` times as fast as this machine (see above),
    during runs only: a profile measures the machine and reports itself scaled."""

    def __init__(self, speed: float, tid: int) -> None:
        if not 0 < speed <= 1:
            raise ValueError(f"speed {speed}: a stretched device is slower than this machine")
        self.speed, self.tid, self.active = speed, tid, False
        self.restart()

    def restart(self) -> None:
        """Count from now: the thread starts computing (after a wait or idle time)."""
        self.wall, self.cpu = time.monotonic(), time.thread_time()

    def catch_up(self) -> None:
        """Sleep until the slow device would be done with the CPU time used since the last
        call (time the thread spent preempted counts towards it)."""
        if not self.active:
            return
        used = time.thread_time() - self.cpu
        ahead = self.wall + used / self.speed - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        self.restart()


def stretch_compute(speed: float, tid: int) -> None:
    """Make thread `tid` compute as a device `speed` times as fast (development workers)."""
    global _stretch
    _stretch = Stretch(speed, tid)


def _mine() -> Stretch | None:
    """The stretch of the calling thread, if it is the stretched one."""
    s = _stretch
    return s if s is not None and s.tid == threading.get_native_id() else None


@contextlib.contextmanager
def stretched_run() -> Iterator[None]:
    """Around a run on the compute thread: stretched from its start to its result."""
    s = _mine()
    if s is None:
        yield
        return
    s.active = True
    s.restart()
    try:
        yield
        s.catch_up()
    finally:
        s.active = False


def handing_off() -> None:
    """The calling thread is about to let others see what it computed (or to wait on them)."""
    if (s := _mine()) is not None:
        s.catch_up()


@contextlib.contextmanager
def blocking() -> Iterator[None]:
    """Around a wait of the calling thread on the ring (its caller has called `handing_off`
    before it started timing the wait)."""
    if _stretch is not None:
        try:
            yield
        finally:
            if (s := _mine()) is not None:
                s.restart()  # it computed nothing while it waited
        return
    if not _hooks:
        yield
        return
    for block, _ in _hooks:
        block()
    try:
        yield
    finally:
        for _, resume in _hooks:
            resume()


def ballast_from_env(compute_tid: int) -> int | None:
    """Run the ballast named by GALAXY_DEV_BALLAST_PID while thread `compute_tid` waits on the
    ring; its pid, or None when the variable is not set."""
    value = os.environ.get("GALAXY_DEV_BALLAST_PID")
    if not value:
        return None
    pid = int(value)

    def signal_if_computing(sig: signal.Signals) -> Callable[[], None]:
        def send() -> None:
            if threading.get_native_id() == compute_tid:
                os.kill(pid, sig)

        return send

    _hooks.append((signal_if_computing(signal.SIGCONT), signal_if_computing(signal.SIGSTOP)))
    return pid
