"""How fast the MLP block runs at a given share of its columns (one thread, no quota).

    .venv/bin/python -m galaxy_bench.mlp_widths qwen2.5-0.5b-shape 4864,3470,3456,1621,1600

prints GFLOP/s of the engine's `mlp_partial` over 256 and 512 rows, twice per width, timed as
the worker's profiler times it. On this machine widths that are not a multiple of 64 ran
10-22% slower, which is why plans split MLP columns in blocks of 64
(`edge_worker/spec/plan.py` `split_columns`).
"""

from __future__ import annotations

import sys

import torch

from edge_worker.models.catalog import load_config
from edge_worker.profile.compute import runs_per_second, time_mlp
from edge_worker.spec.flops import mlp_flops
from edge_worker.spec.hf_config import config_from_hf


def main(argv: list[str] | None = None) -> int:
    """argv: MODEL and comma-separated column counts; prints one line per width and round."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write(f"usage: python -m galaxy_bench.mlp_widths MODEL COLS,COLS,...\n{__doc__}")
        return 2
    torch.set_num_threads(1)
    cfg = config_from_hf(load_config(args[0]))
    rows = [256, 512]
    for rep in range(2):
        for cols in (int(c) for c in args[1].split(",")):
            per_s = time_mlp(cfg, cols, rows, torch.float32, lambda w: runs_per_second(w, 1.0, 0.1))
            gflops = [mlp_flops(cfg, m, cols) * r / 1e9 for m, r in zip(rows, per_s, strict=True)]
            print(f"round {rep + 1}  {cols:5d} columns: " + "  ".join(f"{g:5.1f}" for g in gflops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
