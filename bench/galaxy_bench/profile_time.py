"""How long a worker's profile takes, and how far its figures land from a careful one.

    .venv/bin/python -m galaxy_bench.profile_time bert-large-shape qwen2.5-0.5b-shape

times `layer_costs` (edge_worker/profile/compute.py) with the gateway's own request for each
model (`assistant/cluster/profiling.py` `profile_request`: the default budget, a 3-device
home, seq 512) on one thread with no CPU quota, as a worker's compute thread runs it. Each
round runs the gateway's profile and a careful one (`--careful` seconds, default 20)
alternately, so both see the same noise, and prints the profile's wall time and how far each
of its figures (projection, MLP and attention GFLOP/s, connective ns, decode ms) lies from the
careful profile's: the median and the largest relative difference. The first round also shows
a cold start (the process's first profile: thread pools, allocator).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from assistant.cluster.models import model_config
from assistant.cluster.profiling import profile_request
from edge_worker.profile.compute import LayerCosts, layer_costs
from edge_worker.spec.config import ModelConfig


def figures(c: LayerCosts) -> dict[str, float]:
    """Every figure of a profile, by name."""
    return {
        **{f"proj {m}x{n}": g for m, n, g in c.proj},
        **{f"mlp {m}x{n}": g for m, n, g in c.mlp},
        **{f"attention {e}": g for e, g in c.attention},
        "connective": c.connective_ns,
        **{f"decode {p}": ms for p, ms in c.decode},
    }


def timed(cfg: ModelConfig, seconds: float | None) -> tuple[float, LayerCosts]:
    """(wall seconds, costs) of one profile with the gateway's request (its budget if None)."""
    req = profile_request(cfg, 512, world=3)
    budget = req.seconds if seconds is None else seconds
    t0 = time.perf_counter()
    costs = layer_costs(cfg, req.seq, req.rows, req.heads, req.cols, torch.float32, budget)
    return time.perf_counter() - t0, costs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--careful", type=float, default=20.0, help="the careful profile's seconds")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for rnd in range(args.rounds):
        for name in args.models:
            cfg = model_config(name)
            took, fast = timed(cfg, None)
            _, careful = timed(cfg, args.careful)
            ref = figures(careful)
            off = {k: abs(v / ref[k] - 1) for k, v in figures(fast).items()}
            worst = max(off, key=off.__getitem__)
            print(
                f"round {rnd + 1}  {name:20s} profile {took:5.2f} s  "
                f"off the {args.careful:g} s profile: median {statistics.median(off.values()):5.1%}"
                f", largest {off[worst]:5.1%} ({worst}; {len(off)} figures)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
