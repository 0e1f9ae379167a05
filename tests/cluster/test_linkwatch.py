"""A ring that slows mid-run asks for a link check (linkwatch.RingDrift)."""

from __future__ import annotations

from typing import Any

from assistant.cluster.linkwatch import RingDrift

MB = 2**20


def trace(wait_ms: float, sent: int, devices: int = 3) -> list[dict[str, Any]]:
    """A one-step request trace where every device waited `wait_ms` and sent `sent` bytes."""
    each = {"total_ms": 1.0, "compute_ms": 1.0, "wait_ms": wait_ms, "sent": sent, "received": 0}
    return [{"op": "prefill", "devices": {f"d{i}": dict(each) for i in range(devices)}}]


def test_a_ring_that_waits_far_longer_per_byte_than_its_best_sets_suspect() -> None:
    drift = RingDrift(factor=4.0, window=3, floor_ms_per_mb=20.0)
    for _ in range(5):  # a fast link: 8 ms per MB
        assert not drift.observe("plan-a", trace(8.0, MB))
    assert not drift.suspect.is_set()

    fired = [drift.observe("plan-a", trace(800.0, MB)) for _ in range(3)]  # now 10 Mbit/s

    # The median of the last three decides (two slow requests of three), and one alarm is
    # enough until the cooldown has passed.
    assert fired == [False, True, False]
    assert drift.suspect.is_set() and drift.alarms == 1


def test_noise_below_the_factor_and_requests_too_small_to_measure_say_nothing() -> None:
    drift = RingDrift(factor=4.0, window=3, min_bytes=256 * 1024, floor_ms_per_mb=20.0)
    drift.observe("plan-a", trace(10.0, MB))
    for wait in (30.0, 70.0, 50.0, 60.0):  # slower, but under 4 x max(best, floor) = 80
        assert not drift.observe("plan-a", trace(wait, MB))
    for _ in range(5):  # decode steps: a few KB, whatever the wait
        assert not drift.observe("plan-a", trace(5000.0, 4096))
    assert not drift.suspect.is_set()


def test_each_plan_has_its_own_best_and_alarms_are_spaced() -> None:
    drift = RingDrift(factor=4.0, window=1, cooldown_s=60.0)
    drift.observe("fast", trace(8.0, MB))
    # A plan made on an already slow link: its own best is slow, so it is no drift.
    assert not any(drift.observe("slow", trace(800.0, MB)) for _ in range(3))

    assert drift.observe("fast", trace(800.0, MB))
    drift.suspect.clear()
    assert not drift.observe("fast", trace(900.0, MB))  # within the cooldown: one probe is enough
    assert not drift.suspect.is_set()
