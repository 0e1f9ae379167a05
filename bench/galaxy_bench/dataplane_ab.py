"""A/B of ring data planes (issue 16): does moving ring bytes stall compute, through the GIL?

    .venv/bin/python -m galaxy_bench.dataplane_ab [--reps 5] [--mix gemm|layer] [--pin]
        [--compute-ranks K] [--variants thread-plain,...] [--out FILE.json]

Starts `--world` rank processes on 127.0.0.1. Each has a compute thread (1 torch thread)
running one rank's bert-large GEMM tiles of a ring chunk (`--mix layer` adds layer norm, GELU
and residual add between them) while its main thread moves hmp-like ring traffic: all-gather
of (1, rows, hidden) fp32 split `world` ways, then reduce-scatter of it, `--iters` pairs.

    thread-*    today's TcpRingCommunicator in the rank process (threads share its GIL);
                thread-tls is the product's ring (TLS 1.3, then sealed records, sealed.py);
                thread-tlsrecords the ring before sealed records (every byte through TLS
                records on memory BIOs: tls.TlsSocket), for comparison; thread-tls-nice5
                the product's ring with its link threads at nice +5 (link.RING_NICE;
                the 12-07 run had it the other way round: thread-tls at +5, nice0 at 0);
    process-*   a child process per rank owns the TcpRingCommunicator; tensors cross a
                shared-memory arena (copied in and out by the rank), a pipe carries the ops;
    gloo        torch.distributed gloo (C++ threads, no TLS; shares padded to even splits).

Each rep runs every variant (order rotated per rep) in three phases, ranks in step: compute
alone (`--seconds`), ring alone, ring during compute; figures are medians over reps of means
over ranks. Compute thread: GEMM GFLOP/s and, from the kernel's schedstat, the fractions of its
wall time blocked (no I/O: the GIL, or a VM's steal time, as in `blocked_alone`) and runnable
but off CPU (contention). Ring MB/s count each collective's (1, rows, hidden) payload; CPU ms
per MB (ring alone): rank and communication process. `--pin`: compute threads on CPU 0, the
rest of the bench on CPU 1. Only ratios within one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from galaxy_bench.ab_rings import GlooRing, ProcessRing, Ring, patched, tcp_ring
from galaxy_bench.ring_tls import issue_ring_credentials

THREAD_VARIANTS = ("thread-plain", "thread-tls", "thread-tls-nice5", "thread-tlsrecords")
VARIANTS = (*THREAD_VARIANTS, "process-plain", "process-tls", "gloo")
BARRIER_S = 300.0
NONE = (math.nan,) * 3  # compute figures of a rank that does not compute
PHASES = ("alone", "ring")  # compute alone, compute while the ring moves bytes
FIGURES = (
    *(f"{figure}_{phase}" for phase in PHASES for figure in ("gflops", "blocked", "runqueue")),
    *("mbps_alone", "mbps_compute", "rank_cpu_ms_per_mb", "comm_cpu_ms_per_mb"),
)


@dataclass
class Config:
    world: int = 3
    rows: int = 512
    hidden: int = 1024
    reps: int = 5
    seconds: float = 1.0  # the compute-alone phase
    iters: int = 20  # all-gather + reduce-scatter pairs per ring phase
    variants: str = ",".join(VARIANTS)
    compute_ranks: int = 0  # ranks 0..K-1 compute, the others only move bytes; 0: all
    mix: str = "gemm"  # or "layer"
    pin: bool = False


Op = tuple[Callable[[], object], float]  # (run it, its GEMM flops)


def compute_ops(cfg: Config) -> list[Op]:
    """GEMM tiles of one ring chunk; with mix "layer" each is followed by a layer's small ops,
    which make the thread take the GIL back many more times per second."""
    g = torch.Generator().manual_seed(0)
    t, h, n = -(-cfg.rows // cfg.world), cfg.hidden, cfg.world
    ops: list[Op] = []
    for k, m in [(h, h), (h, 4 * h // n), (4 * h // n, h), (h // n, h)]:
        x, w = torch.randn(1, t, k, generator=g), torch.randn(k, m, generator=g)
        out = torch.empty(1, t, m)
        ops.append((partial(torch.matmul, x, w, out=out), 2.0 * t * k * m))
        if cfg.mix == "layer":
            ops += [(partial(F.layer_norm, out, (m,)), 0.0), (partial(F.gelu, out), 0.0)]
            ops.append((partial(torch.add, out, out, out=out), 0.0))
    return ops


def compute_loop(ops: list[Op], done: Callable[[], bool], pin: bool) -> tuple[float, ...]:
    """Run `ops` round and round until `done()` (checked after each op): (GEMM GFLOP/s,
    fraction of wall time blocked, fraction runnable but off CPU). `pin`: stay on CPU 0."""
    if pin:
        os.sched_setaffinity(0, {0})  # this thread only
    stat = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
    run0, queue0 = (int(f) for f in stat.read_text().split()[:2])  # ns on CPU, ns queued
    flops, t0 = 0.0, time.perf_counter()
    while True:
        for run_op, op_flops in ops:
            run_op()
            flops += op_flops
            if done():
                wall = time.perf_counter() - t0
                run1, queue1 = (int(f) for f in stat.read_text().split()[:2])
                ran, queued = (run1 - run0) / 1e9, (queue1 - queue0) / 1e9
                return flops / wall / 1e9, max(0.0, wall - ran - queued) / wall, queued / wall


def deadline(seconds: float) -> Callable[[], bool]:
    end = time.perf_counter() + seconds
    return lambda: time.perf_counter() > end


def in_thread(fn: Callable[[], tuple[float, ...]]) -> Callable[[], tuple[float, ...]]:
    """Start fn in a new thread; the returned function joins it and returns fn's result."""
    got: list[tuple[float, ...]] = []
    worker = threading.Thread(target=lambda: got.append(fn()), name="compute")
    worker.start()

    def join() -> tuple[float, ...]:
        worker.join()
        return got[0]

    return join


def make_ring(variant: str, rank: int, cfg: Config, token: bytes, tmp: Path) -> Ring:
    tls = tmp if "-tls" in variant else None
    if variant.startswith("thread-"):
        return tcp_ring(rank, cfg.world, token, tls)
    if variant.startswith("process-"):
        return ProcessRing(rank, cfg.world, token, tls, 4 * cfg.rows * cfg.hidden)
    return GlooRing(rank, cfg.world, tmp / "gloo-store")


def rank_main(
    rank: int, cfg: Config, token: bytes, tmp: Path, up: Any, down: Connection, barrier: Any
) -> None:
    """Build every variant's ring, check its results, then measure; send samples `up`."""
    torch.set_num_threads(1)
    if cfg.pin:
        os.sched_setaffinity(0, {1})  # inherited by the ring's threads and processes
    variants = cfg.variants.split(",")
    rings = {v: make_ring(v, rank, cfg, token, tmp) for v in variants}
    up.put((rank, {v: r.address for v, r in rings.items()}))
    peers = down.recv()
    for v in variants:
        with patched(v):
            rings[v].connect(peers[v])
    n, h = cfg.world, cfg.hidden
    sizes = [cfg.rows // n + (1 if i < cfg.rows % n else 0) for i in range(n)]
    mine = torch.full((1, sizes[rank], h), rank + 1.0)
    full = torch.full((1, cfg.rows, h), rank + 1.0)
    want = torch.cat([torch.full((1, s, h), i + 1.0) for i, s in enumerate(sizes)], 1)
    for v, ring in rings.items():  # warm up, and check that every variant computes the same
        ok = torch.equal(ring.all_gather(mine, sizes, 1), want)
        if not (ok and bool((ring.reduce_scatter(full, sizes, 1) == n * (n + 1) / 2).all())):
            raise AssertionError(f"{v}: wrong collective result on rank {rank}")
    ops, mb = compute_ops(cfg), cfg.iters * 2 * 4 * cfg.rows * h / 1e6

    def ring_phase(ring: Ring) -> tuple[float, float, float]:
        """(MB/s, CPU s of this process, CPU s of its communication process)."""
        c0, k0, t0 = time.process_time(), getattr(ring, "child_cpu", 0.0), time.perf_counter()
        for _ in range(cfg.iters):
            ring.all_gather(mine, sizes, 1)
            ring.reduce_scatter(full, sizes, 1)
        seconds = time.perf_counter() - t0
        return mb / seconds, time.process_time() - c0, getattr(ring, "child_cpu", 0.0) - k0

    computes, samples = rank < (cfg.compute_ranks or n), []
    for rep in range(cfg.reps):
        for v in variants[rep % len(variants) :] + variants[: rep % len(variants)]:
            barrier.wait(BARRIER_S)
            timed = partial(compute_loop, ops, deadline(cfg.seconds), cfg.pin)
            alone = in_thread(timed)() if computes else NONE
            barrier.wait(BARRIER_S)
            mbps_alone, rank_cpu, comm_cpu = ring_phase(rings[v])
            barrier.wait(BARRIER_S)
            stop = threading.Event()
            join = in_thread(partial(compute_loop, ops, stop.is_set, cfg.pin)) if computes else None
            mbps_busy = ring_phase(rings[v])[0]
            stop.set()
            busy = join() if join else NONE
            rates = (mbps_alone, mbps_busy, 1e3 * rank_cpu / mb, 1e3 * comm_cpu / mb)
            figures = dict(zip(FIGURES, (*alone, *busy, *rates), strict=True))
            samples.append({"variant": v, "rep": rep} | figures)
    up.put((rank, samples))
    barrier.wait(BARRIER_S)  # nobody leaves a ring while a neighbour still measures
    for ring in rings.values():
        ring.close()


def run(cfg: Config) -> dict[str, Any]:
    """Run every rank, gather their samples, and summarise them per variant."""
    ctx = mp.get_context("spawn")
    token = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="dataplane-ab-") as tmp:
        issue_ring_credentials(Path(tmp), [f"rank{r}" for r in range(cfg.world)])
        up, barrier = ctx.Queue(), ctx.Barrier(cfg.world)
        pipes = [ctx.Pipe() for _ in range(cfg.world)]
        procs = [
            ctx.Process(target=rank_main, args=(r, cfg, token, Path(tmp), up, pipes[r][1], barrier))
            for r in range(cfg.world)
        ]
        for p in procs:
            p.start()
        try:
            addresses = dict(_next(up, procs) for _ in range(cfg.world))
            for end, _ in pipes:
                end.send({v: [addresses[r][v] for r in range(cfg.world)] for v in addresses[0]})
            samples = [s for _ in range(cfg.world) for s in _next(up, procs)[1]]
        finally:
            for p in procs:
                p.join(60)
                if p.is_alive():
                    p.terminate()
    rows = [{k: None if x != x else x for k, x in s.items()} for s in samples]  # NaN: null
    return {"config": asdict(cfg), "summary": summarise(samples), "samples": rows}


def _next(q: Any, procs: list[Any]) -> Any:
    """The next message from the ranks; raise if a rank died instead."""
    while True:
        try:
            return q.get(timeout=1.0)
        except Exception:
            if dead := [p.exitcode for p in procs if p.exitcode not in (None, 0)]:
                raise RuntimeError(f"a rank process exited with {dead[0]}") from None


def summarise(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per variant and figure: the median over reps of the mean over ranks (NaN: a rank that
    does not compute), with ratios (during / alone) per rank and rep: `gflops_ratio`,
    `on_cpu_ratio` (GFLOP per second the compute thread was on a CPU) and `mbps_ratio`."""
    by_rep: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for s in samples:
        on = [s[f"gflops_{p}"] / (1 - s[f"blocked_{p}"] - s[f"runqueue_{p}"]) for p in PHASES]
        s = s | {"gflops_ratio": s["gflops_ring"] / s["gflops_alone"]}
        s["on_cpu_ratio"], s["mbps_ratio"] = on[1] / on[0], s["mbps_compute"] / s["mbps_alone"]
        by_rep.setdefault(s["variant"], {}).setdefault(s["rep"], []).append(s)
    out = {}
    for v, reps in by_rep.items():
        keys = [k for k in next(iter(reps.values()))[0] if k not in ("variant", "rep")]
        means = [{k: _mean([r[k] for r in rows]) for k in keys} for rows in reps.values()]
        out[v] = {k: float(f"{statistics.median(m[k] for m in means):.4g}") for k in keys}
    return out


def _mean(xs: list[float]) -> float:
    return statistics.fmean(k) if (k := [x for x in xs if not math.isnan(x)]) else math.nan


def table(summary: dict[str, dict[str, float]]) -> str:
    """One column per variant, one row per figure."""
    keys = next(iter(summary.values()))
    lines = [f"{'':20s}" + "".join(f"{v:>15s}" for v in summary)]
    lines += [f"{k:20s}" + "".join(f"{f[k]:15.4g}" for f in summary.values()) for k in keys]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(Config):
        flag, default = "--" + f.name.replace("_", "-"), getattr(Config(), f.name)
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true")
        else:
            p.add_argument(flag, type=type(default), default=default)
    p.add_argument("--out", type=Path, help="write config, summary and samples as JSON")
    a = vars(p.parse_args(argv))
    out = a.pop("out")
    cfg = Config(**a)
    if bad := set(cfg.variants.split(",")) - set(VARIANTS) | ({cfg.mix} - {"gemm", "layer"}):
        p.error(f"unknown {sorted(bad)}: variants are {VARIANTS}, mixes gemm and layer")
    result = run(cfg)
    print(table(result["summary"]))  # a script's output, not a log
    if out:
        out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
