"""Compute and memory measurements, run on the worker's own compute thread.

`layer_costs` times the engine's own functions (`engine/layers.py`) at one model's real shapes,
on the thread that will run the model, so the numbers include whatever CPU quota, cache size or
SIMD the device has, and everything a layer does besides its GEMMs (biases, rotary embeddings,
grouped-query K/V, the activation, transposed weights). It measures what the planner's cost
model needs:
- the attention projections (QKV + out) and the MLP block, each on a grid of row counts (a
  whole sequence down to a small ring tile) by shares of the layer (all heads or columns, and
  one device's share): GFLOP/s;
- the attention core at several sizes of its score matrix (heads x queries x keys: past a cache
  size, softmax attention slows down sharply): GFLOP/s;
- the connective block (norm + residual add): ns per element;
- one decode step through a whole layer (one token against a KV cache of the sequence) at each
  share: ms. A decode step streams every weight from memory once, so the timed work cycles
  through enough copies of the weights to spill out of the caches, as a real model's layers do.
The whole profile keeps to the `seconds` it is given (making weights and warming up included):
each measurement gets an even share of what is left, and at least 3 batches.

The memory readings (`rss_mb`, `peak_rss_mb`, `available_memory_mb`, `total_memory_mb`) use
psutil, so they work on Linux, macOS and Windows; Linux adds an exact, resettable peak.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psutil
import torch
from torch import Tensor

from edge_worker.engine import layers as L
from edge_worker.engine.weights import MLP, Attention, Norm
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.flops import core_flops, mlp_flops, proj_flops

T = TypeVar("T")
STREAM_BYTES = 64 * 2**20  # weights cycled through per op: past this machine's 32 MiB L3
# The shortest batch timed: three periods of a 10 ms CPU quota. A throttled device spends the
# profile's wall-time budget early, and batches of one period then land either in a burst or
# behind the throttle: decode steps, timed last, read 1.3 ms in one profile and 19.8 in the
# next on the same device (bench/RESULTS.md, 12-07 evening, item 6).
MIN_BATCH_S = 0.03


def runs_per_second(work: Callable[[], object], seconds: float, batch_s: float = 0.1) -> float:
    """Runs per second of `work`: the median over batches of at least `batch_s` each (several
    periods of a CPU quota, so a throttled device reads at its average speed), measured in
    about `seconds` all told (warm-up and batch sizing included), and over at least 3 batches.
    The median shrugs off a burst of other work."""
    start = time.perf_counter()
    work()  # warm up: allocation, kernel selection
    per_batch = 1
    while True:  # grow the batch until it spans `batch_s` (the warm-up's time misleads)
        t0 = time.perf_counter()
        for _ in range(per_batch):
            work()
        took = time.perf_counter() - t0
        if took >= batch_s:
            break
        per_batch = max(per_batch * 2, int(per_batch * batch_s / max(took, 1e-6) * 1.2))
    rates: list[float] = [per_batch / took]
    while len(rates) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        for _ in range(per_batch):
            work()
        rates.append(per_batch / (time.perf_counter() - t))
    return statistics.median(rates)


@dataclass(frozen=True)
class LayerCosts:
    """One device's measured costs for one model's layer shapes."""

    proj: list[tuple[int, int, float]]  # (rows, heads, GFLOP/s) of the QKV + out projections
    mlp: list[tuple[int, int, float]]  # (rows, columns, GFLOP/s) of the MLP block
    attention: list[tuple[int, float]]  # (score elements, GFLOP/s) of the attention core
    connective_ns: float  # ns per element of a (rows, hidden) norm + residual add
    decode: list[tuple[int, float]]  # (layer parameters, ms) of one decode step, one layer


def _randn(*shape: int, dtype: torch.dtype) -> Tensor:
    return torch.randn(*shape, dtype=dtype) * 0.02


def _attention(cfg: ModelConfig, heads: int, dtype: torch.dtype) -> Attention:
    h, hd, kv = cfg.hidden_size, cfg.head_dim, heads // cfg.group_size
    bias = cfg.qkv_bias
    return Attention(
        wq=_randn(heads * hd, h, dtype=dtype),
        wk=_randn(kv * hd, h, dtype=dtype),
        wv=_randn(kv * hd, h, dtype=dtype),
        wo=_randn(h, heads * hd, dtype=dtype),
        bq=_randn(heads * hd, dtype=dtype) if bias else None,
        bk=_randn(kv * hd, dtype=dtype) if bias else None,
        bv=_randn(kv * hd, dtype=dtype) if bias else None,
    )


def _mlp(cfg: ModelConfig, cols: int, dtype: torch.dtype) -> MLP:
    h = cfg.hidden_size
    return MLP(
        w_up=_randn(cols, h, dtype=dtype),
        w_down=_randn(h, cols, dtype=dtype),
        w_gate=_randn(cols, h, dtype=dtype) if cfg.gated_mlp else None,
        b_up=_randn(cols, dtype=dtype) if cfg.mlp_bias else None,
    )


def _copies(make: Callable[[], T], nbytes: float, cfg: ModelConfig) -> Iterator[T]:
    """Endless round-robin over enough copies of `make()` (of `nbytes` each) to spill out of
    the caches, as a model's layers do, but no more copies than the model has layers."""
    n = max(1, min(cfg.n_layers, math.ceil(STREAM_BYTES / max(nbytes, 1.0))))
    first = make()  # random once; the copies are clones (a copy is cheaper than randn)
    return itertools.cycle([first, *(_clone(first) for _ in range(n - 1))])


def _clone(weights: Any) -> Any:
    """A copy of weights (a weights dataclass, or a tuple of them) with every tensor in new
    memory."""
    if isinstance(weights, tuple):
        return tuple(_clone(w) for w in weights)
    tensors = {
        f.name: v.clone()
        for f in dataclasses.fields(weights)
        if isinstance(v := getattr(weights, f.name), Tensor)
    }
    return dataclasses.replace(weights, **tensors)


def _norm(cfg: ModelConfig, dtype: torch.dtype) -> Norm:
    h = cfg.hidden_size
    bias = torch.zeros(h, dtype=dtype) if cfg.norm == "layernorm" else None
    return Norm(torch.ones(h, dtype=dtype), bias)


def _rope(
    cfg: ModelConfig, start: int, rows: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor] | None:
    if cfg.positions != "rope":
        return None
    hd = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    return L.rope_cos_sin(torch.arange(start, start + rows), inv_freq, 1.0, dtype)


def layer_costs(
    cfg: ModelConfig,
    seq: int,
    rows: list[int],
    heads: list[int],
    cols: list[int],
    dtype: torch.dtype = torch.float32,
    seconds: float = 3.0,
) -> LayerCosts:
    """Time `cfg`'s layer pieces on this thread in about `seconds` in all: the projections at
    every (row count, head share), the MLP at every (row count, column share), the attention
    core over `seq` and `seq // 2` tokens for every head share, the connective block, and a
    decode step against a cache of `seq` tokens at each (heads, cols) pair."""
    deadline = time.perf_counter() + seconds
    left = len(rows) * (len(heads) + len(cols)) + 2 * len(heads) + 1 + 2  # measurements

    def rate(work: Callable[[], object]) -> float:
        """Each measurement gets an even share of what is left of `seconds` (making weights
        and warming up come out of it too), in batches of up to 0.1 s and at least
        `MIN_BATCH_S`, which spans several periods of a CPU quota even when the budget is
        spent."""
        nonlocal left
        each = max(0.0, deadline - time.perf_counter()) / max(1, left)
        left -= 1
        return runs_per_second(work, each, min(0.1, max(MIN_BATCH_S, each / 4)))

    hd = cfg.head_dim
    proj = [
        (m, nh, proj_flops(cfg, m, nh) * per_s / 1e9)
        for nh in heads
        for m, per_s in zip(rows, _time_projections(cfg, nh, rows, dtype, rate), strict=True)
    ]
    mlp = [
        (m, nc, mlp_flops(cfg, m, nc) * per_s / 1e9)
        for nc in cols
        for m, per_s in zip(rows, time_mlp(cfg, nc, rows, dtype, rate), strict=True)
    ]
    scores = []
    for nh in heads:
        for t in sorted({seq, max(1, seq // 2)}):
            q = _randn(1, nh, t, hd, dtype=dtype)
            k, v = (_randn(1, nh // cfg.group_size, t, hd, dtype=dtype) for _ in range(2))
            per_s = rate(partial(L.attend, q, k, v, causal=cfg.causal, q_start=0))
            scores.append((nh * t * t, core_flops(cfg, t, t, nh) * per_s / 1e9))
    h = cfg.hidden_size
    m = max(rows)
    x, r, g = _randn(1, m, h, dtype=dtype), _randn(1, m, h, dtype=dtype), _norm(cfg, dtype)
    per_s = rate(lambda: L.norm(x + r, g, cfg))
    shares = sorted({(heads[0], cols[0]), (heads[-1], cols[-1])}, reverse=True)
    decode = [_decode_step(cfg, nh, nc, seq, dtype, rate) for nh, nc in shares]
    return LayerCosts(proj, mlp, sorted(scores), 1e9 / per_s / (m * h), decode)


Rate = Callable[[Callable[[], object]], float]


def _time_projections(
    cfg: ModelConfig, heads: int, rows: list[int], dtype: torch.dtype, rate: Rate
) -> list[float]:
    """Runs per second of the QKV (with biases, rotary embeddings) and out projections of
    `heads` heads over each of `rows` tokens."""
    nbytes = 2 * cfg.hidden_size * cfg.head_dim * (heads + heads // cfg.group_size)
    attn = _copies(lambda: _attention(cfg, heads, dtype), nbytes * _size(dtype), cfg)
    out = []
    for m in rows:
        x = _randn(1, m, cfg.hidden_size, dtype=dtype)
        ctx = _randn(1, m, heads * cfg.head_dim, dtype=dtype)
        rope = _rope(cfg, 0, m, dtype)

        def work(
            x: Tensor = x, ctx: Tensor = ctx, rope: tuple[Tensor, Tensor] | None = rope
        ) -> None:
            w = next(attn)
            L.qkv(x, w, cfg, rope)
            L.linear(ctx, w.wo)

        out.append(rate(work))
    return out


def time_mlp(
    cfg: ModelConfig, cols: int, rows: list[int], dtype: torch.dtype, rate: Rate
) -> list[float]:
    """Runs per second of the MLP block's share of `cols` columns over each of `rows` tokens."""
    nbytes = cfg.hidden_size * cols * (3 if cfg.gated_mlp else 2)
    blocks = _copies(lambda: _mlp(cfg, cols, dtype), nbytes * _size(dtype), cfg)
    out = []
    for m in rows:
        x = _randn(1, m, cfg.hidden_size, dtype=dtype)

        def work(x: Tensor = x) -> None:
            L.mlp_partial(x, next(blocks), cfg)

        out.append(rate(work))
    return out


def _size(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits // 8


def _decode_step(
    cfg: ModelConfig,
    heads: int,
    cols: int,
    past: int,
    dtype: torch.dtype,
    rate: Callable[[Callable[[], object]], float],
) -> tuple[int, float]:
    """(parameters, ms) of one token through one layer's share of `heads` and `cols` after
    `past` tokens: norms, projections, the KV cache append, attention, MLP, residual adds."""
    h, hd, kv = cfg.hidden_size, cfg.head_dim, heads // cfg.group_size

    def make() -> tuple[Attention, MLP]:
        return _attention(cfg, heads, dtype), _mlp(cfg, cols, dtype)

    params = h * hd * (2 * heads + 2 * kv) + h * cols * (3 if cfg.gated_mlp else 2)
    layer = _copies(make, params * _size(dtype), cfg)
    x, g = _randn(1, 1, h, dtype=dtype), _norm(cfg, dtype)
    cache = [_randn(1, kv, past, hd, dtype=dtype) for _ in range(2)]
    rope = _rope(cfg, past, 1, dtype)

    def step() -> Tensor:
        attn, mlp = next(layer)
        q, k, v = L.qkv(L.norm(x, g, cfg), attn, cfg, rope)
        k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        y = x + L.linear(L.attend(q, k, v, causal=cfg.causal, q_start=past), attn.wo)
        return y + L.mlp_partial(L.norm(y, g, cfg), mlp, cfg)

    return params, 1e3 / rate(step)


# ----- memory: portable through psutil; Linux adds an exact, resettable peak -----------------

_MB = 2**20  # "MB" in profiles and results is MiB, as the kernel's kB are KiB


@dataclass(frozen=True)
class _PeakBase:
    lifetime: float  # the OS's lifetime peak at the reset (bytes)
    rss: float  # resident bytes at the reset
    exact: bool  # the kernel's own peak was reset (Linux): it alone is the answer


_peak_base: _PeakBase | None = None  # None: no reset yet, the peak covers the process life


def rss_mb() -> float:
    """Resident memory of this process now (MB)."""
    return float(psutil.Process().memory_info().rss) / _MB


def peak_rss_mb() -> float:
    """Peak resident memory since the last `reset_peak_rss` (MB), or since the process began.

    Linux: the kernel's high-water mark (VmHWM), which the reset restarts: exact. Elsewhere the
    OS keeps only a lifetime peak (Windows' peak working set, macOS's ru_maxrss): once it has
    grown past its value at the reset it is the peak since the reset (exact); until then the
    answer is the larger of the resident memory at the reset and now (a lower bound).
    """
    lifetime = _lifetime_peak_bytes()
    base = _peak_base
    if base is None or base.exact or lifetime > base.lifetime:
        return lifetime / _MB
    return max(base.rss, float(psutil.Process().memory_info().rss)) / _MB


def reset_peak_rss() -> None:
    """Restart the peak-memory count at the current usage (see `peak_rss_mb`)."""
    global _peak_base
    exact = False
    if sys.platform.startswith("linux"):
        # Linux: "5" resets the kernel's VmHWM to the current RSS. Refused (some containers
        # mount /proc read-only): fall back on the lifetime-peak rule below.
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
            exact = True
    rss = float(psutil.Process().memory_info().rss)
    _peak_base = _PeakBase(_lifetime_peak_bytes(), rss, exact)


def _lifetime_peak_bytes() -> float:
    """The OS's peak resident memory of this process (since start or a Linux reset), bytes."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024  # kB
    info = psutil.Process().memory_info()
    peak = getattr(info, "peak_wset", None)  # Windows
    if peak is not None:
        return float(peak)
    if sys.platform != "win32":
        import resource  # Unix only

        maxrss = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, else KiB
    return float(info.rss)


def available_memory_mb() -> float:
    """Memory the system could give this process now (MB; Linux: MemAvailable)."""
    return float(psutil.virtual_memory().available) / _MB


def total_memory_mb() -> float:
    """The device's RAM (MB)."""
    return float(psutil.virtual_memory().total) / _MB
