"""The bounds the bench prints beside every variant (galaxy_bench/bounds.py)."""

from __future__ import annotations

import pytest

from assistant.planner.profiles import DeviceProfile
from edge_worker.models.catalog import load_config
from edge_worker.spec.hf_config import config_from_hf
from edge_worker.spec.plan import ParallelPlan, make_plan
from galaxy_bench.bounds import (
    compute_bound_ms,
    gap_closed,
    prefill_flops,
    wire_bound_ms,
)

BERT = config_from_hf(load_config("bert-large-shape"))


def dev(name: str, gflops: float, mbps: float = 1000) -> DeviceProfile:
    return DeviceProfile(
        name=name, gflops=gflops, memory_mb=16384, bandwidth_mbps=mbps, latency_ms=0.3
    )


def test_the_compute_bound_spreads_every_flop_over_every_device() -> None:
    home = [dev("a", 30), dev("b", 20), dev("c", 10)]

    bound = compute_bound_ms(BERT, 512, home)

    assert bound == pytest.approx(prefill_flops(BERT, 512) / 60e9 * 1e3)
    layers = 24 * 12.6e6  # bert-large's parameters outside the embeddings
    assert 2 * 512 * layers < prefill_flops(BERT, 512) < 2 * 512 * layers * 1.2  # + attention


def test_the_wire_bound_is_the_rings_time_alone() -> None:
    fast = [dev("a", 30), dev("b", 20), dev("c", 10)]
    slow = [dev("a", 30, 100), dev("b", 20, 100), dev("c", 10, 100)]
    hmp = make_plan(BERT, "hmp", [3.0, 2.0, 1.0])

    assert wire_bound_ms(BERT, [dev("a", 30)], ParallelPlan("local", 1), 512) < 1.0
    assert 0 < wire_bound_ms(BERT, fast, hmp, 512) < wire_bound_ms(BERT, slow, hmp, 512)
    # 96 collectives of 512 x 1024 fp32 over 1000 Mbit/s: at least (2/3 of 2 MiB) each
    assert wire_bound_ms(BERT, fast, hmp, 512) > 96 * (2 / 3) * 2**21 * 8 / 1e9 * 1e3 * 0.9


def test_gap_closed_is_the_share_of_hmps_distance_to_the_bound() -> None:
    assert gap_closed(1000.0, 700.0, 400.0) == pytest.approx(0.5)
    assert gap_closed(300.0, 250.0, 400.0) is None  # already under the bound: nothing to close
