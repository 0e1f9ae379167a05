"""Ask workers to profile themselves for a model, and turn the answers into planner profiles."""

from __future__ import annotations

from dataclasses import asdict

from assistant.planner.profiles import DeviceProfile, ring_cpu_cost
from edge_worker.service import protocol as P
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import split_columns

PROFILE_SECONDS = 2.5  # the worker's budget; with a cold start it ends within 3 s unthrottled


def profile_request(
    cfg: ModelConfig,
    seq: int,
    *,
    world: int = 8,
    seconds: float = PROFILE_SECONDS,
    fresh: bool = False,
) -> P.Profile:
    """The measurements the cost model needs for `cfg` at sequence length `seq` in a home of
    up to `world` devices: the projections and the MLP over 256, 32 and 8 rows (a whole
    sequence's GEMMs run as fast as 256 rows'; ring tiles are smaller), each for the whole
    layer and for one device's share of it (whole key/value groups of heads, MLP columns)."""
    heads = cfg.group_size * max(1, cfg.n_kv_heads // world)
    cols = split_columns(cfg.intermediate_size, [1.0] * world)[-1]  # aligned, as plans are
    return P.Profile(
        config=asdict(cfg),
        seq=seq,
        rows=sorted({min(seq, r) for r in (256, 32, 8)}, reverse=True),
        heads=sorted({cfg.n_heads, heads}, reverse=True),
        cols=sorted({cfg.intermediate_size, cols}, reverse=True),
        seconds=seconds,
        fresh=fresh,
    )


def device_profile(
    hello: P.Hello,
    measured: P.ProfileResult,
    link: tuple[float, float],
) -> DeviceProfile:
    """A planner profile from measurements: the worker's memory (free at start, less its
    reserve), its layer costs and its link (Mbit/s, latency ms); what overlap costs it is the
    prior until learned from traces (cluster/learning.py)."""
    free = hello.memory_mb or 4096.0  # an old worker that does not say: assume 4 GiB
    return DeviceProfile(
        name=hello.name,
        gflops=measured.gflops,
        memory_mb=max(1.0, free),
        reserve_mb=min(hello.reserve_mb, max(0.0, free - 1.0)),
        bandwidth_mbps=link[0],
        latency_ms=link[1],
        proj_grid=measured.proj,
        mlp_grid=measured.mlp,
        attention_curve=measured.attention,
        connective_ns=measured.connective_ns,
        decode_points=measured.decode,
        ring_cpu_ms_per_mb=ring_cpu_cost(
            measured.cpu_cores, measured.compute_threads, measured.ring_cpu_ms_per_mb
        ),
    )
