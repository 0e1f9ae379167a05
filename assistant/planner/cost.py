"""A cost model for every strategy: predicted latency split into compute, communication, idle.

Pure functions of the model config, the devices (in ring order) and a plan. Layers are alike,
so one layer is costed and multiplied.

Compute (prefill): the attention projections and the MLP take their FLOPs / the device's
measured throughput for that block *at the tile's row count and the device's share of the
layer* (small ring tiles and thin shares run slower), the attention core its FLOPs / the
measured throughput at that size of score matrix (heads x queries x keys), the connective block
(norms, residual adds) its measured ns per element. A decode step is priced from measured whole
steps: a fixed cost per layer (dozens of small operations) plus a cost per weight, streamed
from memory once per token; a decoder's step also runs its output head over the vocabulary and
sends the logits back to the gateway. Profiles without measurements (a hypothetical home in a
profile file) use `gflops` for prefill and `gemv_gflops` for decode.

Communication is priced in `ring.py` (links, pipelined ring collectives). Synchronising
collectives make every phase last as long as its slowest device: the rest of that time is
"idle".

Overlap (hmp): simulated chunk by chunk as `engine/overlap.py` runs it. A device computes the
tile of a ring chunk once that chunk has arrived; the ring relays each chunk as it arrives
(cut-through in pieces, `ring.py`) and a reduce-scatter partial leaves a device only once that
device's own tile for the chunk is computed. Tiles cost the device's `overlap_compute` times
their GEMMs' measured time. The MLP's all-gather and reduce-scatter share the
same links, so they can never take less than their bytes on the wire together. Where the ring
has no core of its own (`ring_cpu_ms_per_mb`), its CPU work on a device adds to that device's
compute: on one shared core, overlap hides the wire but not the ring's CPU. (Without overlap
the ring runs alone, at the rate the link probe measured under the same CPU: nothing to add.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from assistant.planner.profiles import DeviceProfile
from assistant.planner.ring import (
    all_gather_ms,
    all_reduce_ms,
    gather_arrivals,
    link_ms,
    reduce_finish,
    reduce_scatter_ms,
)
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.flops import (
    ATTENTION_ROWS,
    core_flops,
    layer_params,
    mlp_flops,
    out_flops,
    proj_flops,
    qkv_flops,
)
from edge_worker.spec.plan import ParallelPlan, kv_heads, kv_owned, wire_bytes

CONNECTIVE_FLOPS = 20.0  # per element of a (T, h) activation, when not measured


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


# ----- milliseconds of one device's pieces of work ------------------------------------------


def connective_flops(cfg: ModelConfig, rows: int) -> float:
    return CONNECTIVE_FLOPS * rows * cfg.hidden_size


def qkv_ms(
    cfg: ModelConfig, d: DeviceProfile, rows: int, heads: int, kv: int | None = None
) -> float:
    """QKV projections of `heads` query heads and `kv` key/value heads (replicas included)."""
    return qkv_flops(cfg, rows, heads, kv) / (d.proj_gflops(rows, heads) * 1e9) * 1e3


def out_ms(cfg: ModelConfig, d: DeviceProfile, rows: int, heads: int) -> float:
    return out_flops(cfg, rows, heads) / (d.proj_gflops(rows, heads) * 1e9) * 1e3


def core_ms(cfg: ModelConfig, d: DeviceProfile, rows: int, heads: int, keys: int) -> float:
    gflops = d.attention_gflops(heads * rows * keys)
    return core_flops(cfg, rows, keys, heads) / (gflops * 1e9) * 1e3


def sp_keys(cfg: ModelConfig, start: int, rows: int, seq_len: int) -> int:
    """The keys that sp's query rows [start, start + rows) of `seq_len` cost as, priced like
    a prefill's attention core (`core_ms`).

    An encoder's rows see every key. A causal decoder's rows see the keys up to themselves:
    the first chunk is a causal prefill, the case the profile measured (`profile/compute.py`:
    its speed counts the whole square's FLOPs over the time of the causal half). A later
    chunk runs blocks of `ATTENTION_ROWS` queries against the keys up to each block's end
    (engine/attention.py), as much work as a causal prefill of 2 * start + rows (+ one block)
    keys per query: the last chunk of a long prompt costs several times the first.
    """
    if not cfg.causal:
        return seq_len
    return rows if start == 0 else 2 * start + rows + min(rows, ATTENTION_ROWS)


def sp_rank_ms(cfg: ModelConfig, d: DeviceProfile, start: int, rows: int, seq_len: int) -> float:
    """One device's compute per layer of sp over query rows [start, start + rows) (ms)."""
    if rows == 0:
        return 0.0
    attn = attn_ms(cfg, d, rows, cfg.n_heads, sp_keys(cfg, start, rows, seq_len))
    return attn + mlp_ms(cfg, d, rows, cfg.intermediate_size) + 2 * conn_ms(cfg, d, rows)


def sp_times(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], rows: Sequence[int], seq_len: int
) -> list[float]:
    """Each device's compute per layer of sp, its `rows` in ring order (ms)."""
    starts = [sum(rows[:i]) for i in range(len(rows))]
    return [sp_rank_ms(cfg, d, s, r, seq_len) for d, s, r in zip(ring, starts, rows, strict=True)]


def attn_ms(
    cfg: ModelConfig, d: DeviceProfile, rows: int, heads: int, keys: int, kv: int | None = None
) -> float:
    """QKV projection, attention core and out-projection of `heads` over `rows` queries, with
    `kv` key/value heads projected (default: their whole groups; more when a group is split
    between devices and replicated)."""
    proj = proj_flops(cfg, rows, heads, kv) / (d.proj_gflops(rows, heads) * 1e9) * 1e3
    return proj + core_ms(cfg, d, rows, heads, keys)


def mlp_ms(cfg: ModelConfig, d: DeviceProfile, rows: int, cols: int) -> float:
    return mlp_flops(cfg, rows, cols) / (d.mlp_gflops(rows, cols) * 1e9) * 1e3


def conn_ms(cfg: ModelConfig, d: DeviceProfile, rows: int) -> float:
    """One connective block (norm, residual add, biases) over `rows` tokens."""
    if d.connective_ns is not None:
        return rows * cfg.hidden_size * d.connective_ns * 1e-6
    return connective_flops(cfg, rows) / (d.gflops * 1e9) * 1e3


def layer_ms(cfg: ModelConfig, d: DeviceProfile, rows: int) -> float:
    """One whole layer over `rows` tokens on one device."""
    return (
        attn_ms(cfg, d, rows, cfg.n_heads, rows)
        + mlp_ms(cfg, d, rows, cfg.intermediate_size)
        + 2 * conn_ms(cfg, d, rows)
    )


def decode_layer_ms(
    cfg: ModelConfig, d: DeviceProfile, heads: int, cols: int, past: int, kv: int | None = None
) -> float:
    """One decode step through one layer's share (`kv` key/value heads as in `attn_ms`): the
    measured line (a fixed cost for the step's small operations plus a cost per weight
    streamed from memory), else FLOPs at the one-row GEMM speed."""
    line = d.decode_line()
    if line is not None:
        return line[0] + line[1] * layer_params(cfg, heads, cols, kv)
    flops = 2 * layer_params(cfg, heads, cols, kv) + core_flops(cfg, 1, past, heads)
    return flops / (d.decode_gflops * 1e9) * 1e3


def ends_ms(cfg: ModelConfig, last: DeviceProfile) -> float:
    """What a decoder's step adds on the rank that holds the output head: the head's one-row
    GEMV over the whole vocabulary, and the logits' trip back to the gateway."""
    if not (cfg.causal and cfg.lm_head):
        return 0.0
    weights = cfg.vocab_size * cfg.hidden_size
    line = last.decode_line()
    head = line[1] * weights if line else 2 * weights / (last.decode_gflops * 1e9) * 1e3
    return head + link_ms(last, last, cfg.vocab_size * 4) + last.latency_ms


def _tiles(
    order: Sequence[int], arrived: Sequence[float], tile_ms: Sequence[float], start: float = 0.0
) -> list[float]:
    """Compute tiles in `order`, each once its chunk has arrived; when each tile is done."""
    done = [0.0] * len(tile_ms)
    t = start
    for c in order:
        t = max(t, arrived[c]) + tile_ms[c]
        done[c] = t
    return done


def tile_ms(
    cfg: ModelConfig, d: DeviceProfile, plan: ParallelPlan, rank: int, rows: Sequence[int]
) -> tuple[list[float], list[float], list[float]]:
    """Device `rank`'s ring tiles of an overlapped hmp layer, one per chunk of `rows`, at their
    GEMMs' measured speed (before `overlap_compute`): QKV, out-projection and MLP block."""
    heads, cols, kv = plan.heads[rank], plan.mlp_columns[rank], kv_heads(cfg, plan)[rank]
    return (
        [qkv_ms(cfg, d, r, heads, kv) if r else 0.0 for r in rows],
        [out_ms(cfg, d, r, heads) if r else 0.0 for r in rows],
        [mlp_ms(cfg, d, r, cols) if r else 0.0 for r in rows],
    )


def ring_cpu_ms(
    d: DeviceProfile, rank: int, chunk: Sequence[float], psum: Sequence[float]
) -> float:
    """What the ring's own CPU work takes from device `rank`'s compute in one overlapped hmp
    layer where the ring shares the compute's CPU (`ring_cpu_ms_per_mb`): two all-gathers of
    `chunk` bytes and two reduce-scatters of `psum` bytes, every chunk received once but the
    device's own (a reduce-scatter's chunk c starts at device c + 1)."""
    n = len(chunk)
    received = 2 * (sum(chunk) - chunk[rank]) + 2 * (sum(psum) - psum[(rank - 1) % n])
    return received / 1e6 * d.ring_cpu_ms_per_mb


def _overlapped_layer(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, t: int, act: float
) -> Breakdown:
    """One hmp layer with tile-based overlap (engine/overlap.py), simulated."""
    n, h = len(ring), cfg.hidden_size
    rows = plan.seq_split(t)
    chunk, psum = [r * act for r in rows], [r * wire_bytes(plan.wire_dtype, h, True) for r in rows]
    heads = plan.heads
    tiles = [tile_ms(cfg, d, plan, i, rows) for i, d in enumerate(ring)]
    ring_order = [[(i - s) % n for s in range(n)] for i in range(n)]  # own chunk first
    reduce_order = [[(i - 1 - s) % n for s in range(n)] for i in range(n)]  # own chunk last
    # Attention: QKV tiles as chunks arrive; the core; out-projection tiles feed the ring.
    arrived = gather_arrivals(ring, chunk)
    ready = []
    for i, d in enumerate(ring):
        qkv = [ms * d.overlap_compute for ms in tiles[i][0]]
        out = [ms * d.overlap_compute for ms in tiles[i][1]]
        core = core_ms(cfg, d, t, heads[i], t)
        qkv_done = max(_tiles(ring_order[i], arrived[i], qkv))
        ready.append(_tiles(reduce_order[i], [0.0] * n, out, qkv_done + core))
    attention = max(reduce_finish(ring, psum, ready))
    conn = [conn_ms(cfg, d, r) for d, r in zip(ring, rows, strict=True)]
    # MLP: each chunk through the whole block as it arrives (own chunk first, fed last).
    ready = []
    for i, d in enumerate(ring):
        block = [ms * d.overlap_compute for ms in tiles[i][2]]
        mlp_order = [i, *reduce_order[i][:-1]]
        ready.append(_tiles(mlp_order, arrived[i], block))
    wire = all_gather_ms(ring, chunk) + reduce_scatter_ms(ring, psum)  # the same links
    mlp = max(max(reduce_finish(ring, psum, ready)), wire)
    total = attention + mlp + 2 * max(conn)
    busy = rank_compute_ms(cfg, ring, plan, t)
    slow = max(busy)
    total = max(total, slow)
    return Breakdown(total, slow, max(0.0, total - slow), slow - sum(busy) / n)


# ----- phases -------------------------------------------------------------------------------


def _phase(times: Sequence[float], comm: float = 0.0) -> Breakdown:
    """A synchronised phase: everyone waits for the slowest, then `comm` (not overlapped)."""
    slow = max(times)
    idle = slow - sum(times) / len(times)
    return Breakdown(slow + comm, slow, comm, idle)


def predict(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, seq_len: int
) -> Breakdown:
    """Predicted latency of a prefill of `seq_len` tokens under `plan` on `ring` (for a
    decoder, until the next token's logits are back at the gateway)."""
    ends = ends_ms(cfg, ring[-1])
    handoff = handoff_ms(cfg, ring, plan, seq_len)
    return _prefill_layers(cfg, ring, plan, seq_len) + Breakdown(ends + handoff, ends, handoff, 0.0)


def handoff_ms(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, seq_len: int
) -> float:
    """An hmp prefill that decodes on one device ends by all-gathering every layer's K/V
    shards to it (exact, in fp32; a replicated group is sent once, by its first holder)."""
    if not (cfg.causal and plan.strategy == "hmp" and plan.decode == "local") or len(ring) < 2:
        return 0.0
    per_head = 2 * cfg.n_layers * seq_len * cfg.head_dim * 4  # K and V, every layer
    return all_gather_ms(ring, [len(kv) * per_head for kv in kv_owned(cfg, plan)])


def _prefill_layers(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, seq_len: int
) -> Breakdown:
    t, h, n = seq_len, cfg.hidden_size, len(ring)
    # Bytes of one token's activation on the wire: gathered or sent, and as a partial sum.
    act, psum = wire_bytes(plan.wire_dtype, h), wire_bytes(plan.wire_dtype, h, summed=True)
    s = plan.strategy
    if s == "local":
        return _phase([layer_ms(cfg, ring[0], t)]).scaled(cfg.n_layers)
    if s == "pp":
        total = Breakdown(0, 0, 0, 0)
        for i, (d, layers) in enumerate(zip(ring, plan.layers, strict=True)):
            hop = link_ms(d, ring[i + 1], t * act) if i < n - 1 else 0.0
            work = layer_ms(cfg, d, t) * layers
            # One request flows through the stages one after another: the others wait.
            total = total + Breakdown(work + hop, work, hop, work * (n - 1) / n)
        return total
    rows = plan.seq_split(t)
    if s == "sp":
        kv_bytes = [
            2 * r * cfg.n_kv_heads * wire_bytes(plan.wire_dtype, cfg.head_dim) for r in rows
        ]
        times = sp_times(cfg, ring, rows, t)
        return _phase(times, all_gather_ms(ring, kv_bytes)).scaled(cfg.n_layers)
    if s == "hmp" and plan.overlap and n > 1:
        return _overlapped_layer(cfg, ring, plan, t, act).scaled(cfg.n_layers)
    attn, mlp, conn = split_compute(cfg, ring, plan, t)
    if s == "tp":
        ar = all_reduce_ms(ring, t * psum)
        layer = _phase(attn, ar) + _phase(conn) + _phase(mlp, ar) + _phase(conn)
        return layer.scaled(cfg.n_layers)
    # hmp: connective blocks on each device's own rows, joined by all-gather / reduce-scatter.
    ag = all_gather_ms(ring, [r * act for r in rows])
    rs = reduce_scatter_ms(ring, [r * psum for r in rows])
    layer = _phase(attn, ag + rs) + _phase(conn) + _phase(mlp, ag + rs) + _phase(conn)
    return layer.scaled(cfg.n_layers)


def rank_compute_ms(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, seq_len: int
) -> list[float]:
    """Each device's compute per layer in a tp or hmp prefill, waits left out: overlapped hmp's
    tiles at the device's `overlap_compute`, plus the ring's CPU work where it shares the
    device's CPU; otherwise its attention, MLP and two connective blocks (`split_compute`)."""
    if not (plan.overlap and plan.strategy == "hmp" and len(ring) > 1):
        attn, mlp, conn = split_compute(cfg, ring, plan, seq_len)
        return [a + m + 2 * c for a, m, c in zip(attn, mlp, conn, strict=True)]
    rows, h = plan.seq_split(seq_len), cfg.hidden_size
    chunk = [r * wire_bytes(plan.wire_dtype, h) for r in rows]
    psum = [r * wire_bytes(plan.wire_dtype, h, True) for r in rows]
    return [
        sum(map(sum, tile_ms(cfg, d, plan, i, rows))) * d.overlap_compute
        + core_ms(cfg, d, seq_len, plan.heads[i], seq_len)
        + 2 * conn_ms(cfg, d, rows[i])
        + ring_cpu_ms(d, i, chunk, psum)
        for i, d in enumerate(ring)
    ]


def split_compute(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, seq_len: int
) -> tuple[list[float], list[float], list[float]]:
    """Each device's attention, MLP and one connective block (ms per layer) in a tp or plain
    hmp prefill: its heads and MLP columns over every row; the connective blocks over every
    row in tp, over its own rows in hmp."""
    t = seq_len
    heads, cols, kvs = plan.heads, plan.mlp_columns, kv_heads(cfg, plan)
    attn = [attn_ms(cfg, d, t, hh, t, kv) for d, hh, kv in zip(ring, heads, kvs, strict=True)]
    mlp = [mlp_ms(cfg, d, t, c) for d, c in zip(ring, cols, strict=True)]
    own = [t] * len(ring) if plan.strategy == "tp" else plan.seq_split(t)
    conn = [conn_ms(cfg, d, r) for d, r in zip(ring, own, strict=True)]
    return attn, mlp, conn


def predict_decode(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, past: int
) -> Breakdown:
    """Predicted latency of one decode step after `past` tokens, from the gateway's request to
    the logits back."""
    h, n_layers = cfg.hidden_size, cfg.n_layers
    last, ends = ring[-1], ends_ms(cfg, ring[-1])
    whole = (cfg.n_heads, cfg.intermediate_size)
    if plan.strategy in ("local", "sp") or (plan.strategy == "hmp" and plan.decode == "local"):
        work = decode_layer_ms(cfg, last, *whole, past) * n_layers + ends
        return Breakdown(work, work, 0.0, 0.0)
    if plan.strategy == "pp":
        per = [
            decode_layer_ms(cfg, d, *whole, past) * k
            for d, k in zip(ring, plan.layers, strict=True)
        ]
        hops = sum(link_ms(ring[i], ring[i + 1], h * 4) for i in range(len(ring) - 1))
        return Breakdown(sum(per) + hops + ends, sum(per) + ends, hops, 0.0)
    times = [
        decode_layer_ms(cfg, d, hh, c, past, kv)
        for d, hh, c, kv in zip(
            ring, plan.heads, plan.mlp_columns, kv_heads(cfg, plan), strict=True
        )
    ]
    ar = all_reduce_ms(ring, wire_bytes(plan.wire_dtype, h, summed=True))
    return _phase(times, 2 * ar).scaled(n_layers) + Breakdown(ends, ends, 0.0, 0.0)
