"""A cost model for every strategy: predicted latency split into compute, communication, idle.

Pure functions of the model config, the devices (in ring order) and a plan. Layers are alike,
so one layer is costed and multiplied. Compute is FLOPs / measured GFLOP/s; connective blocks
(norms, residual adds, biases) are costed as CONNECTIVE_FLOPS per element. A transfer of b bytes
from device i to j takes b / min(bandwidth_i, bandwidth_j) plus the mean of their latencies;
the pipelined ring moves a collective in max-over-links(bytes on that link / link rate) plus one
latency per step. Synchronising collectives make every phase last as long as its slowest
device: the rest of that time is "idle".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from assistant.planner.profiles import DeviceProfile
from edge_worker.engine.config import ModelConfig
from edge_worker.engine.plan import ParallelPlan

CONNECTIVE_FLOPS = 20.0  # per element of a (T, h) activation: norm, residual add, bias
TILE_OVERHEAD = 1.08  # row-tiled GEMMs re-read their weights: 5-14% measured here
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Breakdown:
    """Predicted milliseconds of one forward pass (or one decode step)."""

    total_ms: float
    compute_ms: float  # the slowest device's compute on the critical path
    comm_ms: float  # exposed communication
    idle_ms: float  # time faster devices wait for slower ones

    def __add__(self, other: Breakdown) -> Breakdown:
        return Breakdown(
            self.total_ms + other.total_ms,
            self.compute_ms + other.compute_ms,
            self.comm_ms + other.comm_ms,
            self.idle_ms + other.idle_ms,
        )

    def scaled(self, k: float) -> Breakdown:
        return Breakdown(self.total_ms * k, self.compute_ms * k, self.comm_ms * k, self.idle_ms * k)


# ----- FLOPs of one layer's pieces ---------------------------------------------------------


def qkv_flops(cfg: ModelConfig, rows: int, heads: int) -> float:
    return 2.0 * rows * cfg.hidden_size * (heads + 2 * heads // cfg.group_size) * cfg.head_dim


def core_flops(cfg: ModelConfig, q_rows: int, k_rows: int, heads: int) -> float:
    return 4.0 * q_rows * k_rows * heads * cfg.head_dim + 5.0 * q_rows * k_rows * heads


def out_flops(cfg: ModelConfig, rows: int, heads: int) -> float:
    return 2.0 * rows * heads * cfg.head_dim * cfg.hidden_size


def mlp_flops(cfg: ModelConfig, rows: int, cols: int) -> float:
    return 2.0 * rows * cfg.hidden_size * cols * (3 if cfg.gated_mlp else 2)


def connective_flops(cfg: ModelConfig, rows: int) -> float:
    return CONNECTIVE_FLOPS * rows * cfg.hidden_size


def whole_layer_flops(cfg: ModelConfig, rows: int) -> float:
    """One whole layer over `rows` tokens on one device."""
    return (
        qkv_flops(cfg, rows, cfg.n_heads)
        + core_flops(cfg, rows, rows, cfg.n_heads)
        + out_flops(cfg, rows, cfg.n_heads)
        + mlp_flops(cfg, rows, cfg.intermediate_size)
        + 2 * connective_flops(cfg, rows)
    )


def layer_params(cfg: ModelConfig, heads: int, cols: int) -> float:
    kv = heads // cfg.group_size
    attn = cfg.hidden_size * cfg.head_dim * (2 * heads + 2 * kv)
    return attn + cfg.hidden_size * cols * (3 if cfg.gated_mlp else 2)


def _ms(flops: float, d: DeviceProfile, decode: bool = False) -> float:
    return flops / ((d.decode_gflops if decode else d.gflops) * 1e9) * 1e3


# ----- links --------------------------------------------------------------------------------


def link_ms(a: DeviceProfile, b: DeviceProfile, nbytes: float) -> float:
    rate = min(a.bandwidth_mbps, b.bandwidth_mbps) * 1e6 / 8
    return nbytes / rate * 1e3 + (a.latency_ms + b.latency_ms) / 2


def ring_ms(ring: Sequence[DeviceProfile], chunk_bytes: Sequence[float], skip: int) -> float:
    """A pipelined ring collective. Link i -> i+1 carries every chunk except chunk (i + skip):
    skip=1 for all-gather (the next rank's own chunk), 0 for reduce-scatter (a chunk's partial
    sum ends at its owner)."""
    n = len(ring)
    if n == 1:
        return 0.0
    worst = 0.0
    for i in range(n):
        a, b = ring[i], ring[(i + 1) % n]
        carried = sum(chunk_bytes) - chunk_bytes[(i + skip) % n]
        rate = min(a.bandwidth_mbps, b.bandwidth_mbps) * 1e6 / 8
        worst = max(worst, carried / rate * 1e3)
    latency = max(d.latency_ms for d in ring)
    return worst + (n - 1) * latency


def all_gather_ms(ring: Sequence[DeviceProfile], chunk_bytes: Sequence[float]) -> float:
    return ring_ms(ring, chunk_bytes, skip=1)


def reduce_scatter_ms(ring: Sequence[DeviceProfile], chunk_bytes: Sequence[float]) -> float:
    return ring_ms(ring, chunk_bytes, skip=0)


def all_reduce_ms(ring: Sequence[DeviceProfile], nbytes: float) -> float:
    even = [nbytes / len(ring)] * len(ring)
    return reduce_scatter_ms(ring, even) + all_gather_ms(ring, even)


# ----- phases -------------------------------------------------------------------------------


def _phase(times: Sequence[float], comm: float = 0.0) -> Breakdown:
    """A synchronised phase: everyone waits for the slowest, then `comm` (not overlapped)."""
    slow = max(times)
    idle = slow - sum(times) / len(times)
    return Breakdown(slow + comm, slow, comm, idle)


def _overlapped(times: Sequence[float], comm: float, fixed: Sequence[float]) -> Breakdown:
    """A phase whose `times` run concurrently with `comm`, then `fixed` compute."""
    per = [max(t * TILE_OVERHEAD, comm) + f for t, f in zip(times, fixed, strict=True)]
    slow = max(per)
    compute = max(t * TILE_OVERHEAD + f for t, f in zip(times, fixed, strict=True))
    return Breakdown(slow, compute, max(0.0, slow - compute), slow - sum(per) / len(per))


def predict(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, seq_len: int
) -> Breakdown:
    """Predicted latency of a prefill of `seq_len` tokens under `plan` on `ring`."""
    t, h, n = seq_len, cfg.hidden_size, len(ring)
    act = BYTES[plan.wire_dtype] * h  # bytes of one token's activation on the wire
    s = plan.strategy
    if s == "local":
        return _phase([_ms(whole_layer_flops(cfg, t), ring[0])]).scaled(cfg.n_layers)
    if s == "pp":
        total = Breakdown(0, 0, 0, 0)
        full = whole_layer_flops(cfg, t)
        for i, (d, layers) in enumerate(zip(ring, plan.layers, strict=True)):
            hop = link_ms(d, ring[i + 1], t * act) if i < n - 1 else 0.0
            work = _ms(full, d) * layers
            # One request flows through the stages one after another: the others wait.
            total = total + Breakdown(work + hop, work, hop, work * (n - 1) / n)
        return total
    rows = plan.seq_split(t)
    if s == "sp":
        kv_bytes = [2 * r * (cfg.n_kv_heads * cfg.head_dim) * BYTES[plan.wire_dtype] for r in rows]
        times = [
            _ms(
                qkv_flops(cfg, r, cfg.n_heads)
                + core_flops(cfg, r, t, cfg.n_heads)
                + out_flops(cfg, r, cfg.n_heads)
                + mlp_flops(cfg, r, cfg.intermediate_size)
                + 2 * connective_flops(cfg, r),
                d,
            )
            for d, r in zip(ring, rows, strict=True)
        ]
        return _phase(times, all_gather_ms(ring, kv_bytes)).scaled(cfg.n_layers)
    heads, cols = plan.heads, plan.mlp_columns
    attn = [
        _ms(qkv_flops(cfg, t, hh) + core_flops(cfg, t, t, hh) + out_flops(cfg, t, hh), d)
        for d, hh in zip(ring, heads, strict=True)
    ]
    mlp = [_ms(mlp_flops(cfg, t, c), d) for d, c in zip(ring, cols, strict=True)]
    if s == "tp":
        conn = [_ms(connective_flops(cfg, t), d) for d in ring]
        ar = all_reduce_ms(ring, t * act)
        layer = _phase(attn, ar) + _phase(conn) + _phase(mlp, ar) + _phase(conn)
        return layer.scaled(cfg.n_layers)
    # hmp: connective blocks on each device's own rows, joined by all-gather / reduce-scatter.
    chunk = [r * act for r in rows]
    ag, rs = all_gather_ms(ring, chunk), reduce_scatter_ms(ring, chunk)
    conn = [_ms(connective_flops(cfg, r), d) for d, r in zip(ring, rows, strict=True)]
    if not plan.overlap:
        layer = _phase(attn, ag + rs) + _phase(conn) + _phase(mlp, ag + rs) + _phase(conn)
        return layer.scaled(cfg.n_layers)
    qkv = [_ms(qkv_flops(cfg, t, hh), d) for d, hh in zip(ring, heads, strict=True)]
    core = [_ms(core_flops(cfg, t, t, hh), d) for d, hh in zip(ring, heads, strict=True)]
    out = [_ms(out_flops(cfg, t, hh), d) for d, hh in zip(ring, heads, strict=True)]
    zero = [0.0] * n
    layer = (
        _overlapped(qkv, ag, core)  # QKV tiles while chunks arrive; attention core after
        + _overlapped(out, rs, zero)  # out-projection tiles feed the reduce-scatter
        + _phase(conn)
        + _overlapped(mlp, ag + rs, zero)  # fused MLP tiles between both collectives
        + _phase(conn)
    )
    return layer.scaled(cfg.n_layers)


def predict_decode(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, past: int
) -> Breakdown:
    """Predicted latency of one decode step after `past` tokens."""
    h = cfg.hidden_size
    if plan.strategy in ("local", "sp") or (plan.strategy == "hmp" and plan.decode == "local"):
        d = ring[-1]
        flops = 2 * layer_params(cfg, cfg.n_heads, cfg.intermediate_size) + core_flops(
            cfg, 1, past, cfg.n_heads
        )
        return _phase([_ms(flops, d, decode=True)]).scaled(cfg.n_layers)
    if plan.strategy == "pp":
        per = [
            _ms(2 * layer_params(cfg, cfg.n_heads, cfg.intermediate_size), d, decode=True) * k
            for d, k in zip(ring, plan.layers, strict=True)
        ]
        hops = sum(link_ms(ring[i], ring[i + 1], h * 4) for i in range(len(ring) - 1))
        return Breakdown(sum(per) + hops, sum(per), hops, 0.0)
    times = [
        _ms(2 * layer_params(cfg, hh, c) + core_flops(cfg, 1, past, hh), d, decode=True)
        for d, hh, c in zip(ring, plan.heads, plan.mlp_columns, strict=True)
    ]
    ar = all_reduce_ms(ring, h * BYTES[plan.wire_dtype])
    return (_phase(times, 2 * ar)).scaled(cfg.n_layers)


def memory_mb(
    cfg: ModelConfig, plan: ParallelPlan, rank: int, seq_len: int, bytes_per: int = 4
) -> float:
    """Weights + KV cache + peak activations one rank needs under `plan` (MB)."""
    h, t, v = cfg.hidden_size, seq_len, cfg.vocab_size
    s = plan.strategy
    embed = v * h
    if s in ("local", "sp"):
        heads, cols, layers = cfg.n_heads, cfg.intermediate_size, cfg.n_layers
    elif s == "pp":
        heads, cols, layers = cfg.n_heads, cfg.intermediate_size, plan.layers[rank]
        embed = v * h if rank in (0, plan.world_size - 1) else 0
    else:
        heads, cols, layers = plan.heads[rank], plan.mlp_columns[rank], cfg.n_layers
    weights = layers * layer_params(cfg, heads, cols) + embed
    if s == "hmp" and plan.decode == "local" and rank == plan.world_size - 1:
        weights += cfg.n_layers * layer_params(cfg, cfg.n_heads, cfg.intermediate_size)
    kv = 2 * t * (heads // cfg.group_size) * cfg.head_dim * layers if cfg.causal else 0
    activations = t * (6 * h + cols) + heads * t * t  # hidden states, MLP rows, scores
    return (weights + kv + activations) * bytes_per / 2**20
