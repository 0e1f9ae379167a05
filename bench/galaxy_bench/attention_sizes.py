"""The engine's attention core against explicit matmul attention (one thread, no quota).

    .venv/bin/python -m galaxy_bench.attention_sizes [HEADS KV_HEADS HEAD_DIM]

(default 9 3 64: SmolLM2-135M) prints, for causal prefills of 128 to 2048 tokens, a
sequence-parallel chunk (the last third of the queries against every key) and decode steps
against caches of 128 to 2048 tokens, the best of 3 calls in ms of the explicit path (the full
(heads, Tq, Tk) fp32 score matrix, K/V repeated per group: the engine's path before issue 16)
and of `edge_worker.engine.attention.attend`, interleaved, with their largest difference.
The figures in `attention.py`'s docstring came from this comparison.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor

from edge_worker.engine.attention import attend


def explicit(q: Tensor, k: Tensor, v: Tensor, q_start: int) -> Tensor:
    """Causal softmax attention through the whole score matrix."""
    b, n_heads, tq, hd = q.shape
    group = n_heads // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)  # (B, H, Tq, Tk)
    qpos = torch.arange(q_start, q_start + tq)[:, None]
    allowed = torch.arange(k.shape[2])[None, :] <= qpos
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    out = torch.matmul(torch.softmax(scores, dim=-1), v)
    return out.transpose(1, 2).reshape(b, tq, n_heads * hd)


def best_ms(work: Callable[[], object], calls: int = 3) -> float:
    work()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def compare(heads: int, kv_heads: int, hd: int, tq: int, tk: int, q_start: int) -> str:
    q = torch.randn(1, heads, tq, hd)
    k, v = torch.randn(1, kv_heads, tk, hd), torch.randn(1, kv_heads, tk, hd)
    a = best_ms(lambda: explicit(q, k, v, q_start))
    b = best_ms(lambda: attend(q, k, v, causal=True, q_start=q_start))
    err = (explicit(q, k, v, q_start) - attend(q, k, v, causal=True, q_start=q_start)).abs().max()
    return f"Tq {tq:5d} Tk {tk:5d}: explicit {a:8.2f} ms  attend {b:8.2f} ms  max diff {err:.1e}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (0, 3):
        sys.stderr.write(f"usage: python -m galaxy_bench.attention_sizes [H KV HD]\n{__doc__}")
        return 2
    heads, kv_heads, hd = (int(a) for a in args) if args else (9, 3, 64)
    torch.set_num_threads(1)
    with torch.inference_mode():
        print(f"{heads} query heads, {kv_heads} K/V heads, head_dim {hd}; one thread")
        for t in (128, 512, 1024, 2048):
            print("prefill ", compare(heads, kv_heads, hd, t, t, 0), flush=True)
        for t in (1024, 2048):
            print("sp chunk", compare(heads, kv_heads, hd, t // 3, t, t - t // 3), flush=True)
        for t in (128, 2048):
            print("decode  ", compare(heads, kv_heads, hd, 1, t, t - 1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
