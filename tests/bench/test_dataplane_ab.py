"""The data-plane A/B (galaxy_bench.dataplane_ab): it runs every variant end to end at tiny
sizes (each rank checks every variant's collectives against the expected result before
measuring), and summarises samples as documented. No speed is compared here."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest

from galaxy_bench.dataplane_ab import (
    FIGURES,
    VARIANTS,
    Config,
    compute_loop,
    compute_ops,
    deadline,
    main,
    summarise,
)


@pytest.mark.slow
@pytest.mark.long
def test_every_variant_runs_and_the_json_has_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    argv = ["--rows", "12", "--hidden", "16", "--reps", "2", "--seconds", "0.05", "--iters", "2"]

    assert main([*argv, "--compute-ranks", "2", "--out", str(out)]) == 0

    result = json.loads(out.read_text())
    assert set(result["summary"]) == set(VARIANTS)
    assert len(result["samples"]) == 3 * 2 * len(VARIANTS)  # ranks x reps x variants
    for figures in result["summary"].values():
        assert set(figures) == {*FIGURES, "gflops_ratio", "on_cpu_ratio", "mbps_ratio"}
        assert figures["mbps_alone"] > 0 and figures["gflops_alone"] > 0
    for s in result["samples"]:
        if not s["variant"].startswith("process-"):
            assert s["comm_cpu_ms_per_mb"] == 0.0  # no communication process to count
    assert sum(s["gflops_alone"] is None for s in result["samples"]) == 2 * len(VARIANTS)


def sample(variant: str, rep: int, gflops: tuple[float, float], mbps: tuple[float, float]) -> dict:
    figures = dict.fromkeys(FIGURES, 0.0) | {"gflops_alone": gflops[0], "gflops_ring": gflops[1]}
    return figures | {
        "mbps_alone": mbps[0],
        "mbps_compute": mbps[1],
        "variant": variant,
        "rep": rep,
    }


def test_summary_is_the_median_over_reps_of_the_mean_over_ranks() -> None:
    samples = [
        sample("a", 0, (10.0, 5.0), (100.0, 50.0)) | {"runqueue_ring": 0.5},  # rank 0
        sample("a", 0, (math.nan, math.nan), (300.0, 300.0)),  # a rank that does not compute
        sample("a", 1, (10.0, 10.0), (100.0, 100.0)),
        sample("a", 1, (math.nan, math.nan), (100.0, 100.0)),
        sample("a", 2, (20.0, 2.0), (200.0, 20.0)),
        sample("a", 2, (math.nan, math.nan), (200.0, 20.0)),
    ]

    got = summarise(samples)["a"]

    assert got["gflops_alone"] == 10.0  # median of 10, 10, 20 (NaN ranks left out)
    assert got["gflops_ratio"] == 0.5  # median of 0.5, 1.0, 0.1
    assert got["on_cpu_ratio"] == 1.0  # median of (5 / 0.5) / 10 = 1.0, 1.0, 0.1
    assert got["mbps_alone"] == 200.0  # median of the rank means 200, 100, 200
    assert got["mbps_ratio"] == 0.75  # median of mean(0.5, 1.0)=0.75, 1.0, 0.1


def test_the_compute_loop_splits_its_wall_time_into_fractions() -> None:
    ops = compute_ops(Config(rows=12, hidden=16, mix="layer"))

    gflops, blocked, queued = compute_loop(ops, deadline(0.05), pin=False)

    assert gflops > 0
    assert 0.0 <= blocked <= 1.0 and 0.0 <= queued <= 1.0 and blocked + queued <= 1.0


def test_a_thread_that_holds_the_gil_shows_as_blocked_time() -> None:
    """The instrument the A/B rests on: a pure-Python thread (always wanting the GIL) makes
    the compute thread wait for it after every torch op, and that wait counts as blocked."""
    ops, stop = compute_ops(Config(rows=48, hidden=256, mix="layer")), threading.Event()

    def hog() -> None:
        while not stop.is_set():
            pass

    other = threading.Thread(target=hog)
    other.start()
    try:
        _, blocked, _ = compute_loop(ops, deadline(0.5), pin=False)
    finally:
        stop.set()
        other.join()

    assert blocked > 0.05


def test_unknown_variants_are_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--variants", "thread-plain,carrier-pigeon"])
