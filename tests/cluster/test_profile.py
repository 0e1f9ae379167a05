"""Workers profile themselves for a model on their compute thread (edge_worker/profile)."""

from __future__ import annotations

import pytest

from assistant.cluster.profiling import device_profile, profile_request
from assistant.planner.profiles import DeviceProfile, ring_cpu_cost
from edge_worker.errors import GalaxyError
from edge_worker.models.catalog import load_config
from edge_worker.profile.cpu import process_cores
from edge_worker.spec.flops import layer_params
from edge_worker.spec.hf_config import config_from_hf
from tests.cluster.test_workers import Workers

QWEN = config_from_hf(load_config("qwen2.5-0.5b-shape"))  # 14 heads in 2 KV groups, gated MLP


def test_a_worker_times_the_models_real_layer_pieces(three_workers: Workers) -> None:
    cluster, names = three_workers
    request = profile_request(QWEN, 64, world=3, seconds=0.3)
    assert request.rows == [64, 32, 8]  # a whole sequence ... a small ring tile
    assert request.heads == [14, 7]  # all heads, one device's whole KV group
    assert request.cols == [4864, 1600]  # the whole MLP, a third in aligned blocks

    first = cluster.profile(names[0], request)
    again = cluster.profile(names[0], request)

    assert [(m, n) for m, n, _ in first.proj] == [(m, n) for n in (14, 7) for m in (64, 32, 8)]
    assert [(m, n) for m, n, _ in first.mlp] == [(m, n) for n in (4864, 1600) for m in (64, 32, 8)]
    assert [e for e, _ in first.attention] == sorted(h * t * t for h in (14, 7) for t in (64, 32))
    assert all(g > 0 for *_, g in first.proj + first.mlp + first.attention)
    assert first.connective_ns > 0
    assert [p for p, _ in first.decode] == [
        layer_params(QWEN, 14, 4864),
        layer_params(QWEN, 7, 1600),
    ]
    assert all(ms > 0 for _, ms in first.decode)
    assert not first.cached and again.cached and again.mlp == first.mlp
    fresh = cluster.profile(names[0], request.model_copy(update={"fresh": True}))
    assert not fresh.cached

    hello = cluster.coordinator.sessions[names[0]].hello
    profile = device_profile(hello, first, link=(940.0, 0.2))
    assert isinstance(profile, DeviceProfile)
    assert hello.total_memory_mb >= hello.memory_mb > 0
    assert profile.budget_mb == hello.memory_mb - hello.reserve_mb
    assert profile.gflops == (first.mlp[0][2] + first.mlp[3][2]) / 2  # 64 rows, both shares
    assert profile.mlp_gflops(64, 4864) == first.mlp[0][2]
    assert profile.decode_line() is not None
    assert profile.bandwidth_mbps == 940.0 and profile.latency_ms == 0.2
    # The worker says how much CPU its process has (here the test machine's, no quota).
    assert first.cpu_cores == process_cores() and first.compute_threads >= 1
    # ...and what its ring costs per MB, measured through sealed records (profile/ringcpu.py).
    assert first.ring_cpu_ms_per_mb is not None and 0 < first.ring_cpu_ms_per_mb < 100
    assert profile.ring_cpu_ms_per_mb == ring_cpu_cost(
        first.cpu_cores, first.compute_threads, first.ring_cpu_ms_per_mb
    )


def test_a_bad_profile_request_gets_an_error_and_the_worker_carries_on(
    three_workers: Workers,
) -> None:
    cluster, names = three_workers
    request = profile_request(QWEN, 16, world=3, seconds=0.1)
    bad = request.model_copy(update={"config": {**request.config, "family": "nonesuch"}})
    with pytest.raises(GalaxyError, match=r"bad_message.*nonesuch"):
        cluster.profile(names[1], bad)
    assert cluster.profile(names[1], request).mlp
