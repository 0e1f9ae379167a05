"""The worker's memory readings (hello, heartbeat, results): real allocations, real numbers.

Peaks are measured in a fresh process: in the test runner's own, memory freed by earlier tests
stays resident in the allocator's pools, so a new allocation need not raise the peak at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

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


def in_fresh_process(body: str) -> dict[str, float]:
    """Run `body` (which sets `out`, a dict) in a new interpreter; return `out`."""
    code = (
        "import json, sys, torch\n"
        "from edge_worker.profile.compute import peak_rss_mb, reset_peak_rss, rss_mb\n"
        "def touched(mb):\n    return torch.ones(mb * 2**20 // 4)\n"
        + textwrap.dedent(body)
        + "\nprint(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_peak_since_a_reset_counts_memory_allocated_after_it() -> None:
    got = in_fresh_process(
        """
        reset_peak_rss()
        before = rss_mb()
        held = touched(48)
        out = {"before": before, "peak": peak_rss_mb()}
        """
    )

    assert got["peak"] >= got["before"] + 40


def test_a_reset_forgets_a_peak_that_came_before_it() -> None:
    got = in_fresh_process(
        """
        earlier = touched(128)
        del earlier  # large tensors are unmapped on release: resident memory drops back
        high = peak_rss_mb()
        reset_peak_rss()
        out = {"high": high, "after": peak_rss_mb()}
        """
    )

    assert got["after"] < got["high"] - 64


def test_without_proc_the_peak_follows_the_os_lifetime_peak() -> None:
    """The portable path (macOS, BSD: getrusage, no /proc), run here by hiding Linux."""
    got = in_fresh_process(
        """
        sys.platform = "freebsd14"
        reset_peak_rss()
        before = rss_mb()
        held = touched(48)
        out = {"before": before, "peak": peak_rss_mb()}
        """
    )

    assert got["peak"] >= got["before"] + 40
