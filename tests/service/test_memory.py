"""The worker's memory readings (hello, heartbeat, results): real allocations, real numbers."""

from __future__ import annotations

import sys

import pytest
import torch

from edge_worker.profile.compute import (
    available_memory_mb,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    total_memory_mb,
)

MB = 2**20


def touched(mb: int) -> torch.Tensor:
    """`mb` MB that are resident (written), not just reserved."""
    return torch.ones(mb * MB // 4)


def test_the_device_reports_its_ram_and_what_is_free() -> None:
    assert total_memory_mb() >= available_memory_mb() > 0


def test_the_peak_is_never_below_what_is_resident_now() -> None:
    reset_peak_rss()

    assert peak_rss_mb() >= rss_mb() * 0.99 > 0


def test_the_peak_since_a_reset_counts_memory_allocated_after_it() -> None:
    reset_peak_rss()
    before = rss_mb()

    held = touched(48)

    assert peak_rss_mb() >= before + 40
    del held


def test_a_reset_forgets_a_peak_that_came_before_it() -> None:
    earlier = touched(128)
    del earlier  # large tensors are unmapped on release: resident memory drops back
    high = peak_rss_mb()

    reset_peak_rss()

    assert peak_rss_mb() < high - 64


def test_without_proc_the_peak_follows_the_os_lifetime_peak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The portable path (macOS, BSD: getrusage, no /proc), run here by hiding Linux."""
    monkeypatch.setattr(sys, "platform", "freebsd14")
    reset_peak_rss()
    before = rss_mb()

    held = touched(48)
    peak = peak_rss_mb()
    monkeypatch.undo()
    reset_peak_rss()  # leave this process's peak on the Linux rule for the tests that follow

    assert peak >= before + 40
    del held
