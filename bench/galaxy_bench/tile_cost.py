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

The same work with the weights reordered once into oneDNN's blocked layout (QKV fused,
`torch.ops.mkldnn._linear_pointwise`, as torch's inductor does when it freezes a model) is
timed beside it, and one row (a decode step) both ways: the engine does not use it, and this
says why (bench/RESULTS.md, 12-07 evening). So is MKL's packed GEMM (`torch.ops.mkl.
_mkl_linear`, x86 builds of torch with MKL only): it packs a weight once for one row count, so
each tile size needs its own copy of every weight (bench/RESULTS.md, "12-07, midnight").
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

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


class _Packed:
    """A shard's GEMMs on weights packed once (QKV fused), run tile by tile as `tiled` does;
    a subclass packs them and says how one GEMM runs (`_gemm`)."""

    bqkv: torch.Tensor
    b_up: torch.Tensor | None

    def _gemm(self, x: torch.Tensor, name: str, bias: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def run(self, cfg: ModelConfig, x: torch.Tensor, o: torch.Tensor, rows: list[int]) -> None:
        qkv = x.new_empty((x.shape[1], self.bqkv.shape[0]))
        out, down = x.new_empty(x.shape[1:]), x.new_empty(x.shape[1:])
        start = 0
        for r in rows:
            span = slice(start, start + r)
            qkv[span] = self._gemm(x[0, span], "qkv", self.bqkv)
            out[span] = self._gemm(o[0, span], "wo", None)
            up = L.activation(self._gemm(x[0, span], "up", self.b_up), cfg)
            down[span] = self._gemm(up, "down", None)
            start += r


def _weights(attn: Attention, mlp: MLP) -> dict[str, torch.Tensor]:
    return {
        "qkv": torch.cat([attn.wq, attn.wk, attn.wv]),
        "wo": attn.wo,
        "up": mlp.w_up,
        "down": mlp.w_down,
    }


class Prepacked(_Packed):
    """The shard's GEMMs on weights reordered once for oneDNN, QKV in one GEMM. The layout
    oneDNN chooses depends on the rows it is told to expect (`rows`): packed for a tile, it is
    not the one for a decode step's single row."""

    def __init__(self, attn: Attention, mlp: MLP, rows: int) -> None:
        assert attn.bq is not None and attn.bk is not None and attn.bv is not None
        reorder = torch.ops.mkldnn._reorder_linear_weight
        self.packed = {k: reorder(w, rows) for k, w in _weights(attn, mlp).items()}
        self.qkv = self.packed["qkv"]
        self.bqkv = torch.cat([attn.bq, attn.bk, attn.bv])
        self.b_up = mlp.b_up

    def _gemm(self, x: torch.Tensor, name: str, bias: torch.Tensor | None) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed[name], bias, "none", [], "")


class MklPacked(_Packed):
    """The shard's GEMMs with each weight packed by MKL once per row count in `rows` (MKL
    computes from a packed weight only for the row count it was packed for)."""

    def __init__(self, attn: Attention, mlp: MLP, rows: set[int]) -> None:
        assert attn.bq is not None and attn.bk is not None and attn.bv is not None
        self.weights = _weights(attn, mlp)
        self.bqkv = torch.cat([attn.bq, attn.bk, attn.bv])
        self.b_up = mlp.b_up
        pack = torch.ops.mkl._mkl_reorder_linear_weight
        self.packs = {(k, r): pack(w, r) for k, w in self.weights.items() for r in rows}

    def _gemm(self, x: torch.Tensor, name: str, bias: torch.Tensor | None) -> torch.Tensor:
        rows = x.shape[0]
        return torch.ops.mkl._mkl_linear(x, self.packs[name, rows], self.weights[name], bias, rows)


def one_row(attn: Attention, packed: Prepacked, x: torch.Tensor) -> tuple[float, float]:
    """ms of one row through the fused QKV weight, plain and prepacked for one row (a decode
    step's GEMV)."""
    w = torch.cat([attn.wq, attn.wk, attn.wv])
    row, times = x[0, :1], {"plain": [], "packed": []}  # type: ignore[var-annotated]
    for _ in range(7):
        for name, run in (
            ("plain", lambda: torch.addmm(packed.bqkv, row, w.t())),
            (
                "packed",
                lambda: torch.ops.mkldnn._linear_pointwise(
                    row, packed.qkv, packed.bqkv, "none", [], ""
                ),
            ),
        ):
            run()
            t0 = time.perf_counter()
            for _ in range(50):
                run()
            times[name].append((time.perf_counter() - t0) / 50)
    return statistics.median(times["plain"]) * 1e3, statistics.median(times["packed"]) * 1e3


def measure(cfg: ModelConfig, heads: int, cols: int, seq: int, rows: list[int], reps: int) -> str:
    """One shard's GEMMs whole and in tiles, plain and prepacked, as a line of the report."""
    attn, mlp = shard(cfg, heads, cols)
    x = torch.randn(1, seq, cfg.hidden_size)
    o = torch.randn(1, seq, heads * cfg.head_dim)
    packed = Prepacked(attn, mlp, max(rows))
    variants: dict[str, Callable[[], None]] = {
        "whole": lambda: whole(cfg, attn, mlp, x, o, rows),
        "tiles": lambda: tiled(cfg, attn, mlp, x, o, rows),
        "packed whole": lambda: packed.run(cfg, x, o, [seq]),
        "packed tiles": lambda: packed.run(cfg, x, o, rows),
    }
    mkl = MklPacked(attn, mlp, {seq, *rows}) if torch.backends.mkl.is_available() else None
    if mkl is not None:
        variants["mkl whole"] = lambda: mkl.run(cfg, x, o, [seq])
        variants["mkl tiles"] = lambda: mkl.run(cfg, x, o, rows)
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.inference_mode():
        for _ in range(reps):
            for name, run in variants.items():
                run()  # warm
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
        plain_row, packed_row = one_row(attn, Prepacked(attn, mlp, 1), x)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return (
        f"  {heads} heads, {cols} columns: whole {ms['whole']:.1f} ms, tiles "
        f"{ms['tiles']:.1f} ms: {ms['tiles'] / ms['whole']:.3f}x; prepacked, over the plain "
        f"whole: whole {ms['packed whole'] / ms['whole']:.3f}x, tiles "
        f"{ms['packed tiles'] / ms['whole']:.3f}x (packed for {max(rows)} rows); "
        + (
            f"MKL-packed per row count, over the plain whole: whole "
            f"{ms['mkl whole'] / ms['whole']:.3f}x, tiles {ms['mkl tiles'] / ms['whole']:.3f}x; "
            if "mkl whole" in ms
            else "(no MKL in this torch); "
        )
        + f"one row through QKV packed for one row {packed_row / plain_row:.2f}x plain"
    )


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
        print(measure(cfg, heads, cols, args.seq, rows, args.reps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
