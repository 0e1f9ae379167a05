"""The transport benchmark: our ring and gloo on the same links, real processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from galaxy_bench.emulation import DeviceSpec, Home, LinkMode
from galaxy_bench.transport import TransportBenchFailed, run_transport_bench, summarise

LINKS: LinkMode = "netns" if Home.available()["netns"] is None else "loopback"
ROW_KEYS = {
    "transport", "op", "mb_per_rank", "world_size", "latency_ms_median", "latency_ms_all",
    "bandwidth_mbps", "wire_ms", "algbw_MBps", "busbw_MBps", "links", "note",
}  # fmt: skip


def rank_children() -> list[int]:
    """Processes of ours still running a transport rank."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"transport_rank" in cmdline:
            found.append(int(proc.name))
    return found


def two_devices(mbps: float = 1000) -> list[DeviceSpec]:
    return [DeviceSpec("a", 1.0, mbps), DeviceSpec("b", 1.0, mbps)]


def test_a_quick_run_returns_a_row_per_transport_and_op() -> None:
    with Home(two_devices(), links=LINKS, cpu="none") as home:
        rows = run_transport_bench(home, sizes_mb=(1,), reps=2, timeout_s=90)
    assert sorted((r["transport"], r["op"]) for r in rows) == [
        ("gloo", "all_gather"), ("gloo", "reduce_scatter"),
        ("ring", "all_gather"), ("ring", "reduce_scatter"),
    ]  # fmt: skip
    for r in rows:
        assert set(r) == ROW_KEYS
        assert (r["mb_per_rank"], r["world_size"], r["links"]) == (1.0, 2, LINKS)
        assert len(r["latency_ms_all"]) == 2 and r["latency_ms_median"] > 0
        assert r["algbw_MBps"] == pytest.approx(2 / (r["latency_ms_median"] / 1e3), rel=0.01)
        assert r["note"] is None  # torch 2.13's gloo has a reduce-scatter of its own
    if LINKS == "netns":
        assert rows[0]["bandwidth_mbps"] == 1000 and rows[0]["wire_ms"] == pytest.approx(8.0)


def test_a_rep_counts_the_slowest_rank_and_the_row_its_median() -> None:
    home = Home(two_devices(100), links="loopback", cpu="none")
    result = {
        "world_size": 2,
        "times": {"ring|all_gather|2": [[10.0, 30.0, 20.0], [12.0, 5.0, 50.0]]},
        "notes": {},
    }
    (row,) = summarise(result, home)
    assert row["latency_ms_all"] == [12.0, 30.0, 50.0]
    assert row["latency_ms_median"] == 30.0
    assert row["algbw_MBps"] == pytest.approx(2 * 2 / 0.030, rel=1e-3)
    assert row["busbw_MBps"] == pytest.approx(row["algbw_MBps"] / 2, rel=1e-3)


def test_a_run_past_its_deadline_fails_and_stops_every_rank() -> None:
    with (
        Home(two_devices(), links="loopback", cpu="none") as home,
        pytest.raises(TransportBenchFailed, match="did not finish within"),
    ):
        run_transport_bench(home, sizes_mb=(1,), reps=1, timeout_s=0.2)
    assert rank_children() == []
