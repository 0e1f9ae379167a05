"""The bench's sleep emulation of a slow device (comm/waits.py): a stretched compute thread's
results leave it when a device `speed` times as fast would have sent them, its waits cost
what they last, and nothing is stretched outside a run or on another thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest
import torch

from edge_worker.comm import waits
from edge_worker.comm.call import CallStats, RingWork
from edge_worker.comm.tcp import TcpRingCommunicator
from tests.comm.ranks import on_ranks

SPEED = 0.25
BURN_S = 0.04  # of CPU: a device at SPEED takes BURN_S / SPEED = 160 ms for it


@pytest.fixture(autouse=True)
def _no_stretch_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waits, "_stretch", None)  # and back to None after the test


def burn(seconds: float) -> None:
    """Use `seconds` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_hand_off_waits_for_the_slow_device_to_have_computed() -> None:
    waits.stretch_compute(SPEED, threading.get_native_id())
    with waits.stretched_run():
        t0 = time.monotonic()
        burn(BURN_S)
        waits.handing_off()
        took = time.monotonic() - t0

    assert took >= 0.9 * BURN_S / SPEED
    assert took < 3 * BURN_S / SPEED


def test_a_wait_costs_what_it_lasts_and_is_not_stretched() -> None:
    waits.stretch_compute(SPEED, threading.get_native_id())
    with waits.stretched_run():
        waits.handing_off()
        with waits.blocking():
            time.sleep(0.1)  # the ring keeps it waiting; it computes nothing
        t0 = time.monotonic()
        waits.handing_off()
        slept = time.monotonic() - t0

    assert slept < 0.05


def test_a_wait_with_nothing_to_wait_for_is_no_hand_off() -> None:
    """A result already there (a chunk that landed while the slow device computed) neither
    sleeps nor forgets: the compute before it is owed at the next hand-off, so the slow
    device's timeline is the same with fewer sleeps (each one lets other threads take the
    core and its caches)."""
    waits.stretch_compute(SPEED, threading.get_native_id())
    landed: Future[torch.Tensor] = Future()
    landed.set_result(torch.zeros(1))
    work = RingWork(landed, CallStats("all_gather"), 1.0, "rank 0", lambda _s, _t: None)
    with waits.stretched_run():
        t0 = time.monotonic()
        burn(BURN_S)
        work.wait()
        at_wait = time.monotonic() - t0
        waits.handing_off()
        took = time.monotonic() - t0

    assert at_wait < 0.5 * BURN_S / SPEED
    assert took >= 0.9 * BURN_S / SPEED


def test_nothing_is_stretched_outside_a_run_or_on_another_thread() -> None:
    waits.stretch_compute(SPEED, threading.get_native_id())
    burn(BURN_S)  # a profile, between runs: it reports itself scaled
    t0 = time.monotonic()
    waits.handing_off()
    assert time.monotonic() - t0 < 0.05

    def other() -> None:
        with waits.stretched_run():
            burn(BURN_S)
            waits.handing_off()

    t0 = time.monotonic()
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert time.monotonic() - t0 < 0.9 * BURN_S / SPEED


def test_a_stretched_rank_s_chunk_reaches_its_peer_when_the_slow_device_sends_it() -> None:
    """Two ranks on a loopback ring: rank 0 computes as a device at SPEED, rank 1 at this
    machine's speed. Rank 0's chunk of an all-gather lands at rank 1 after rank 0's stretched
    compute, and the result is the same tensor."""
    comms = TcpRingCommunicator.loopback_ring(2, timeout=10)
    start = threading.Barrier(2)

    def rank(comm: TcpRingCommunicator) -> tuple[float, torch.Tensor]:
        x = torch.full((1, 2, 3), float(comm.rank))
        if comm.rank == 0:
            waits.stretch_compute(SPEED, threading.get_native_id())
        with waits.stretched_run():
            start.wait()
            t0 = time.monotonic()
            if comm.rank == 0:
                burn(BURN_S)
            gathered = comm.all_gather(x, [2, 2], dim=1)
            return time.monotonic() - t0, gathered

    try:
        (_, slow_sees), (fast_waited, fast_sees) = on_ranks(comms, rank)
    finally:
        for c in comms:
            c.close()

    assert fast_waited >= 0.9 * BURN_S / SPEED
    want = torch.cat([torch.zeros(1, 2, 3), torch.ones(1, 2, 3)], dim=1)
    assert torch.equal(slow_sees, want) and torch.equal(fast_sees, want)
