"""The compute thread's waits on the ring, announced to whoever asked (the bench's emulation).

`galaxy bench --ballast` emulates a slow device with a CPU quota on its compute thread. A quota
is a duty cycle: a thread that blocks on the ring does not spend it, and afterwards computes at
a whole core's speed until the period's quota is gone, which a device slow all the time cannot.
So the bench starts a spinning process (the ballast) in the same CPU group, stopped, and a
worker started with GALAXY_DEV_BALLAST_PID set lets it run exactly while the compute thread
blocks on the ring: the device's quota is then spent while it waits, as time passes on a slow
CPU. Without that variable nothing is announced and a wait costs one empty list check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

_hooks: list[tuple[Callable[[], None], Callable[[], None]]] = []


@contextlib.contextmanager
def blocking() -> Iterator[None]:
    """Around a wait of the calling thread on the ring."""
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
