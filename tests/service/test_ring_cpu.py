"""The worker measures what its ring costs in CPU per MB (profile/ringcpu.py), for the
planner's charge on devices whose ring shares the compute's core."""

from __future__ import annotations

import time

import pytest

from edge_worker.comm.sealed import SealedSocket
from edge_worker.profile import ringcpu


def test_the_ring_cpu_probe_reports_cpu_time_not_wall_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A receiver that waits (as under a CPU quota, or a slow peer) stretches the probe's wall
    time, not the CPU it reports."""
    quiet = ringcpu.ring_cpu_ms_per_mb(8)
    recv_into = SealedSocket.recv_into

    def slow_recv_into(self: SealedSocket, *args: object) -> int:
        time.sleep(0.03)
        return recv_into(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(SealedSocket, "recv_into", slow_recv_into)
    start = time.monotonic()
    waited = ringcpu.ring_cpu_ms_per_mb(8)
    wall_ms_per_mb = (time.monotonic() - start) * 1e3 / 8

    # Moving a MB costs at least a kernel copy each way, and nowhere near 30 ms of CPU.
    assert 0.01 < quiet < 30 and 0.01 < waited < 30
    assert wall_ms_per_mb >= 30
