"""What tiling costs a device's GEMMs, apart from any ring: one thread, no quota, no network.

    .venv/bin/python -m galaxy_bench.tile_cost [--model bert-large-shape] [--seq 512]
        [--rows 171,171,170] [--shard 3,704] [--shard 9,2304] [--reps 7]

For each shard (query heads, MLP columns) it times one hmp layer's GEMM work the way the
engine does it (engine/layers.py): whole (`_tp_layer`: QKV, out-projection and MLP over all
rows) and in ring tiles (`_overlap_layer`: the same, one chunk of `--rows` at a time, each
written into its rows of a preallocated buffer as engine/overlap.py does). The attention core
and the norms are left out (tiling does not change them). Variants alternate within each rep;
medians over reps. The ratio is the compute overlap costs before any contention: the GEMMs'
efficiency falls with fewer rows (each call streams the whole weight for fewer rows).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from edge_worker.engine import layers as L
from edge_worker.engine.weights import MLP, Attention
from edge_worker.models.shapes import shape_config
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.hf_config import config_from_hf


def shard(cfg: ModelConfig, heads: int, cols: int) -> tuple[Attention, MLP]:
    h, hd = cfg.hidden_size, cfg.head_dim
    g = torch.Generator().manual_seed(0)

    def w(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) / shape[-1] ** 0.5

    kv = max(1, heads * cfg.n_kv_heads // cfg.n_heads)
    attn = Attention(
        wq=w(heads * hd, h), wk=w(kv * hd, h), wv=w(kv * hd, h), wo=w(h, heads * hd),
        bq=w(heads * hd), bk=w(kv * hd), bv=w(kv * hd),
    )  # fmt: skip
    mlp = MLP(w_up=w(cols, h), w_down=w(h, cols), b_up=w(cols))
    return attn, mlp


def whole(
    cfg: ModelConfig, attn: Attention, mlp: MLP, x: torch.Tensor, o: torch.Tensor, rows: list[int]
) -> None:
    L.qkv_project(x, attn)
    L.linear(o, attn.wo)
    L.mlp_partial(x, mlp, cfg)


def tiled(
    cfg: ModelConfig, attn: Attention, mlp: MLP, x: torch.Tensor, o: torch.Tensor, rows: list[int]
) -> None:
    b, t, h = x.shape
    qkv = x.new_empty((b, t, L.qkv_width(attn)))
    out, down = x.new_empty((b, t, h)), x.new_empty((b, t, h))
    start = 0
    for r in rows:
        span = slice(start, start + r)
        L.qkv_project(x[:, span], attn, qkv[:, span])
        L.linear_into(o[:, span], attn.wo, None, out[:, span])
        L.mlp_partial(x[:, span], mlp, cfg, down[:, span])
        start += r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bert-large-shape")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--rows", default="171,171,170", help="the ring's chunks (sum = --seq)")
    ap.add_argument("--shard", action="append", help="heads,columns (repeatable)")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = config_from_hf(shape_config(args.model))
    rows = [int(r) for r in args.rows.split(",")]
    if sum(rows) != args.seq:
        ap.error(f"--rows {rows} sum to {sum(rows)}, not --seq {args.seq}")
    shards = [tuple(int(v) for v in s.split(",")) for s in args.shard or ["3,704", "9,2304"]]
    print(f"{args.model}, {args.seq} rows in tiles of {rows}, one thread, medians of {args.reps}")
    for heads, cols in shards:
        attn, mlp = shard(cfg, heads, cols)
        x = torch.randn(1, args.seq, cfg.hidden_size)
        o = torch.randn(1, args.seq, heads * cfg.head_dim)
        times: dict[str, list[float]] = {"whole": [], "tiles": []}
        with torch.inference_mode():
            for _ in range(args.reps):
                for name, run in (("whole", whole), ("tiles", tiled)):
                    run(cfg, attn, mlp, x, o, rows)  # warm
                    t0 = time.perf_counter()
                    run(cfg, attn, mlp, x, o, rows)
                    times[name].append(time.perf_counter() - t0)
        w, t = (statistics.median(times[k]) * 1e3 for k in ("whole", "tiles"))
        print(f"  {heads} heads, {cols} columns: whole {w:.1f} ms, tiles {t:.1f} ms: {t / w:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
