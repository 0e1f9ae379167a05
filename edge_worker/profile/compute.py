"""Compute and memory measurements, run on the worker's own compute thread.

`gemm_gflops` times the model's real GEMM shape (a sequence of activations times a weight), so
the number already includes whatever CPU quota, cache size or SIMD the device has.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch


def gemm_gflops(
    m: int, k: int, n: int, dtype: torch.dtype = torch.float32, seconds: float = 1.0
) -> float:
    """Sustained GFLOP/s of (m x k) @ (k x n) on the calling thread, over about `seconds`."""
    a = torch.randn(m, k, dtype=dtype)
    b = torch.randn(k, n, dtype=dtype)
    torch.matmul(a, b)  # warm up: allocation, kernel selection
    flops, start, runs = 2.0 * m * k * n, time.perf_counter(), 0
    while True:
        torch.matmul(a, b)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and runs >= 3:
            return flops * runs / elapsed / 1e9


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


def available_memory_mb() -> float:
    """Memory the system could give this process now (MemAvailable), in MB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) / 1024
    return 0.0
