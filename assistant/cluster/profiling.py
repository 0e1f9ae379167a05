"""Ask workers to profile themselves for a model, and turn the answers into planner profiles."""

from __future__ import annotations

from assistant.planner.profiles import DeviceProfile
from edge_worker.engine.config import ModelConfig
from edge_worker.profile.compute import profile_rows
from edge_worker.service import protocol as P


def profile_request(
    cfg: ModelConfig, seq: int, *, world: int = 8, seconds: float = 2.0, fresh: bool = False
) -> P.Profile:
    """The measurements the cost model needs for `cfg` at sequence length `seq`: GEMMs from
    the whole sequence down to one device's tile in a ring of `world`, and one row (decode);
    attention over `seq` for all heads down to one (a device's share), and over half of `seq`."""
    h = cfg.n_heads
    heads = sorted({h, max(1, h // 2), max(1, h // 4), 1}, reverse=True)
    return P.Profile(
        hidden=cfg.hidden_size,
        width=max(1, cfg.intermediate_size // 4),
        head_dim=cfg.head_dim,
        rows=profile_rows(seq, world),
        attention=[(k, seq) for k in heads] + [(h, max(1, seq // 2))],
        seconds=seconds,
        fresh=fresh,
    )


def device_profile(
    hello: P.Hello, measured: P.ProfileResult, link: tuple[float, float]
) -> DeviceProfile:
    """A planner profile from measurements: the worker's memory (free at start, less its
    reserve), its layer costs, and its link (Mbit/s, latency ms)."""
    free = hello.memory_mb or 4096.0  # an old worker that does not say: assume 4 GiB
    return DeviceProfile(
        name=hello.name,
        gflops=measured.gflops,
        memory_mb=max(1.0, free),
        reserve_mb=min(hello.reserve_mb, max(0.0, free - 1.0)),
        bandwidth_mbps=link[0],
        latency_ms=link[1],
        gemm_curve=measured.gemm,
        attention_curve=measured.attention,
        connective_ns=measured.connective_ns,
    )
