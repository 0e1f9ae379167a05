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
    name: str,
    measured: P.ProfileResult,
    memory_mb: float,
    link: tuple[float, float],
) -> DeviceProfile:
    """A planner profile from measurements: layer costs, memory, (Mbit/s, latency ms)."""
    return DeviceProfile(
        name=name,
        gflops=measured.gflops,
        memory_mb=max(1.0, memory_mb),
        bandwidth_mbps=link[0],
        latency_ms=link[1],
        gemm_curve=measured.gemm,
        attention_curve=measured.attention,
        connective_ns=measured.connective_ns,
    )
