"""Compute and memory measurements, run on the worker's own compute thread.

`layer_costs` times the model's real shapes on the thread that will run the model, so the
numbers already include whatever CPU quota, cache size or SIMD the device has. It measures what
the planner's cost model needs for one model on this device: GEMM throughput at several row
counts (the whole sequence, the smaller ring tiles of the overlapped path, one row for decode),
the attention core at several sizes of its score matrix (heads x queries x keys: past a cache
size, softmax attention slows down sharply), and the connective block (norm + residual add) per
element. Small calibrated runs: a few seconds in all.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from edge_worker.engine.layers import attend


def _rate(work: Callable[[], object], seconds: float, batch_s: float = 0.1) -> float:
    """Runs per second of `work`: the median over batches of at least `batch_s` each (several
    periods of a CPU quota, so a throttled device reads at its average speed), measured for
    about `seconds` and at least 3 batches. The median shrugs off a burst of other work."""
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
    start = time.perf_counter()
    while len(rates) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        for _ in range(per_batch):
            work()
        rates.append(per_batch / (time.perf_counter() - t))
    return statistics.median(rates)


@dataclass(frozen=True)
class LayerCosts:
    """One device's measured costs for one model's layer shapes."""

    gemm: list[tuple[int, float]]  # (rows, GFLOP/s) of (rows x hidden) @ (hidden x width)
    attention: list[tuple[int, float]]  # (score elements, GFLOP/s) of the attention core
    connective_ns: float  # ns per element of a (rows, hidden) layer norm + residual add


def attention_flops(seq: int, heads: int, head_dim: int) -> float:
    """FLOPs of softmax attention over `seq` tokens: QK^T and PV (4 T^2 H d), softmax (5 T^2 H).
    The planner's cost model counts the same way."""
    return 4.0 * seq * seq * heads * head_dim + 5.0 * seq * seq * heads


def layer_costs(
    hidden: int,
    width: int,
    head_dim: int,
    rows: list[int],
    attention: list[tuple[int, int]],
    dtype: torch.dtype = torch.float32,
    seconds: float = 2.0,
) -> LayerCosts:
    """Measure GEMMs at each of `rows`, attention at each (heads, sequence length) of
    `attention` and the connective block, in about `seconds` in all. `width` is the GEMM's
    output width (an MLP share)."""
    each = seconds / (len(rows) + len(attention) + 1)
    gemm = []
    w = torch.randn(hidden, width, dtype=dtype)
    for m in rows:
        a = torch.randn(m, hidden, dtype=dtype)
        gemm.append((m, 2.0 * m * hidden * width * _rate(partial(torch.matmul, a, w), each) / 1e9))
    scores = []
    for h, t in attention:
        q, k, v = (torch.randn(1, h, t, head_dim, dtype=dtype) for _ in range(3))
        per_s = _rate(partial(attend, q, k, v, causal=False, q_start=0), each)
        scores.append((h * t * t, attention_flops(t, h, head_dim) * per_s / 1e9))
    m = max(rows)
    x, r = torch.randn(m, hidden, dtype=dtype), torch.randn(m, hidden, dtype=dtype)
    g, b = torch.ones(hidden, dtype=dtype), torch.zeros(hidden, dtype=dtype)
    per_s = _rate(lambda: F.layer_norm(x + r, (hidden,), g, b), each)
    return LayerCosts(gemm, sorted(scores), 1e9 / per_s / (m * hidden))


def profile_rows(seq: int, world: int = 8) -> list[int]:
    """Row counts worth measuring for a sequence of `seq`: the whole sequence, tiles down to one
    device's share in a ring of `world`, and one row (a decode step)."""
    rows = {seq, 1}
    step = seq
    while step > max(1, seq // world):
        step = max(1, step // 2)
        rows.add(step)
    return sorted(rows, reverse=True)


def _status_kb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return 0.0


def rss_mb() -> float:
    """Resident memory of this process now (MB)."""
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    """Peak resident memory since the last `reset_peak_rss` (MB)."""
    return _status_kb("VmHWM") / 1024


def reset_peak_rss() -> None:
    """Restart the peak-memory count at the current usage (Linux: clear_refs 5)."""
    # Not Linux, or not permitted: the peak then covers the whole process life.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _meminfo_mb(field: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024
    return 0.0


def available_memory_mb() -> float:
    """Memory the system could give this process now (MemAvailable), in MB."""
    return _meminfo_mb("MemAvailable")


def total_memory_mb() -> float:
    """The device's RAM (MemTotal), in MB."""
    return _meminfo_mb("MemTotal")
