"""One rank of the transport benchmark (started by `transport.run_transport_bench`).

    python -m galaxy_bench.transport_rank --rank R --world N --store FILE --host ADDR
        --sizes 1,2,4,8 --reps 5 --timeout S        (ring session token in $GALAXY_BENCH_TOKEN)

Joins a gloo process group and a `TcpRingCommunicator` ring, both bound to `--host` (gloo
through $GLOO_SOCKET_IFNAME), with a FileStore rendezvous (no listening socket beyond the
data planes). For each size (MB = 10^6 bytes of float32 per rank, even split) and op, each
transport runs once untimed with its result checked, then `reps` timed rounds, ring and gloo
interleaved, every round after a gloo barrier. Each rank times its own calls; rank 0 gathers
every rank's times and prints one line `TIMES <json>` on stdout:

    {"world_size": N, "times": {"ring|all_gather|1": [[ms per rep] per rank], ...},
     "notes": {"gloo|reduce_scatter": "..."}}

all_gather: every rank contributes `mb` MB and receives N x mb. reduce_scatter: every rank
contributes N x mb MB and receives its `mb` MB of the sum (the mirror image: same bytes on
the wire). Exit status 0 on success; errors go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist

from edge_worker.comm.tcp import TcpRingCommunicator

TOKEN_ENV = "GALAXY_BENCH_TOKEN"
MARKER = "TIMES "
OPS = ("all_gather", "reduce_scatter")
log = logging.getLogger(__name__)


def _gloo_ops() -> tuple[Callable[..., object], Callable[..., object] | None]:
    """(all_gather(out, x), reduce_scatter(out, x) or None): torch 2.13 renamed the tensor
    forms to *_single and deprecated *_into_tensor / *_tensor."""
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    scatter = getattr(dist, "reduce_scatter_single", None) or getattr(
        dist, "reduce_scatter_tensor", None
    )
    return gather, scatter


Call = Callable[[], torch.Tensor]


def _calls(
    comm: TcpRingCommunicator, mb: float, notes: dict[str, str]
) -> dict[tuple[str, str], tuple[Call, torch.Tensor]]:
    """(call, expected result) per (transport, op) for `mb` MB per rank."""
    rank, n = comm.rank, comm.world_size
    gloo_gather, gloo_scatter = _gloo_ops()
    e = max(1, round(mb * 1e6 / 4))  # float32 elements of one rank's share
    split = [e] * n
    shard = torch.full((e,), float(rank + 1))
    full = torch.full((n * e,), float(rank + 1))
    gathered, reduced = torch.empty(n * e), torch.empty(e)
    want_gather = torch.arange(1, n + 1, dtype=torch.float32).repeat_interleave(e)
    want_reduced = torch.full((e,), n * (n + 1) / 2)

    def gloo_all_gather() -> torch.Tensor:
        gloo_gather(gathered, shard)
        return gathered

    def gloo_reduce_scatter() -> torch.Tensor:
        if gloo_scatter is None or "gloo|reduce_scatter" in notes:
            out = full.clone()
            dist.all_reduce(out)  # stands in for the missing reduce-scatter
            return out.narrow(0, rank * e, e)
        gloo_scatter(reduced, full)
        return reduced

    return {
        ("ring", "all_gather"): (lambda: comm.all_gather(shard, split, 0), want_gather),
        ("gloo", "all_gather"): (gloo_all_gather, want_gather),
        ("ring", "reduce_scatter"): (lambda: comm.reduce_scatter(full, split, 0), want_reduced),
        ("gloo", "reduce_scatter"): (gloo_reduce_scatter, want_reduced),
    }


def measure(
    comm: TcpRingCommunicator, sizes_mb: list[float], reps: int
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """This rank's times (ms) per "transport|op|mb" key, and notes on substituted ops."""
    times: dict[str, list[float]] = {}
    notes: dict[str, str] = {}
    for mb in sizes_mb:
        calls = _calls(comm, mb, notes)
        for op in OPS:
            for transport in ("ring", "gloo"):  # warm-up, and a check of the result
                call, want = calls[transport, op]
                try:
                    got = call()
                except RuntimeError as exc:
                    if (transport, op) != ("gloo", "reduce_scatter"):
                        raise
                    notes["gloo|reduce_scatter"] = f"all_reduce instead: {exc}".splitlines()[0]
                    got = call()
                if not torch.equal(got, want):
                    raise RuntimeError(f"{transport} {op} of {mb:g} MB returned wrong values")
            for _ in range(reps):
                for transport in ("ring", "gloo"):
                    call = calls[transport, op][0]
                    dist.barrier()
                    t0 = time.perf_counter()
                    call()
                    ms = (time.perf_counter() - t0) * 1e3
                    times.setdefault(f"{transport}|{op}|{mb:g}", []).append(ms)
            log.info("%s of %g MB per rank done", op, mb)
    return times, notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world", type=int, required=True)
    p.add_argument("--store", required=True, help="FileStore path shared by all ranks")
    p.add_argument("--host", required=True, help="this device's data-plane address")
    p.add_argument("--sizes", required=True, help="MB per rank, comma separated")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds, for every wait")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s rank {args.rank} %(name)s %(levelname)s %(message)s",
    )
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)
    timeout = timedelta(seconds=args.timeout)
    store = dist.FileStore(args.store, args.world)
    store.set_timeout(timeout)
    dist.init_process_group(
        "gloo",
        store=dist.PrefixStore("gloo", store),
        rank=args.rank,
        world_size=args.world,
        timeout=timeout,
    )
    comm = TcpRingCommunicator(
        args.rank,
        args.world,
        bytes.fromhex(os.environ[TOKEN_ENV]),
        args.host,
        0,
        timeout=args.timeout,
    )
    try:
        store.set(f"ring/{args.rank}", json.dumps(list(comm.address)))
        peers = [json.loads(store.get(f"ring/{r}")) for r in range(args.world)]
        comm.connect([(h, int(port)) for h, port in peers])
        times, notes = measure(comm, [float(s) for s in args.sizes.split(",")], args.reps)
        every: list[object] | None = [None] * args.world if args.rank == 0 else None
        dist.gather_object((times, notes), every, dst=0)
        if every is not None:
            merged = {k: [t[0][k] for t in every] for k in times}  # type: ignore[index]
            result = {"world_size": args.world, "times": merged, "notes": notes}
            sys.stdout.write(MARKER + json.dumps(result) + "\n")
            sys.stdout.flush()
        dist.barrier()  # nobody closes its ring links while a peer still measures
    finally:
        comm.close()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
