"""Workers profile themselves for a model on their compute thread (edge_worker/profile)."""

from __future__ import annotations

from assistant.cluster.profiling import device_profile, profile_request
from assistant.planner.profiles import DeviceProfile
from edge_worker.engine.hf_config import config_from_hf
from edge_worker.models.catalog import load_config
from tests.cluster.test_workers import Workers

CFG = config_from_hf(load_config("bert-large-shape"))


def test_a_worker_measures_gemms_attention_and_the_connective_block(
    three_workers: Workers,
) -> None:
    cluster, names = three_workers
    request = profile_request(CFG, 128, world=3, seconds=0.3)

    first = cluster.profile(names[0], request)
    again = cluster.profile(names[0], request)

    assert [m for m, _ in first.gemm] == request.rows
    assert request.rows[0] == 128 and request.rows[-1] == 1  # whole sequence ... one decode row
    assert request.attention == [(16, 128), (8, 128), (4, 128), (1, 128), (16, 64)]
    assert [e for e, _ in first.attention] == sorted(h * t * t for h, t in request.attention)
    assert all(g > 0 for _, g in first.gemm + first.attention)
    assert first.connective_ns > 0
    assert not first.cached and again.cached and again.gemm == first.gemm
    fresh = cluster.profile(names[0], request.model_copy(update={"fresh": True}))
    assert not fresh.cached

    hello = cluster.coordinator.sessions[names[0]].hello
    profile = device_profile(hello, first, link=(940.0, 0.2))
    assert isinstance(profile, DeviceProfile)
    assert hello.total_memory_mb >= hello.memory_mb > 0
    assert profile.budget_mb == hello.memory_mb - hello.reserve_mb
    assert profile.gflops == first.gemm[0][1]
    assert profile.decode_gflops == first.gemm[-1][1]
    assert profile.bandwidth_mbps == 940.0 and profile.latency_ms == 0.2
