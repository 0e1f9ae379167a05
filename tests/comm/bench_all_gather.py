"""All-gather micro-benchmark, TCP ring against the in-process group (timings only, not a test):

.venv/bin/python -m tests.comm.bench_all_gather
"""

from __future__ import annotations

import json
import time

import torch

from edge_worker.comm.local import LocalGroup
from edge_worker.comm.tcp import TcpRingCommunicator
from tests.comm.ranks import on_ranks


def benchmark_all_gather(world: int = 3, mb_per_rank: int = 8, repeats: int = 10) -> dict:
    """Median wall time of an all-gather of `mb_per_rank` MB per rank, TCP ring vs LocalGroup,
    and CPU time per MB delivered (all ranks' threads share this process, so the sending and
    the receiving side of every byte are both counted)."""
    n = mb_per_rank * 1024 * 1024 // 4
    xs = [torch.randn(n) for _ in range(world)]
    out: dict = {"world": world, "mb_per_rank": mb_per_rank}
    tcp = TcpRingCommunicator.loopback_ring(world)
    local = LocalGroup(world)
    for name, comms in (("tcp", list(tcp)), ("local", list(local.comms))):
        times, cpu = [], 0.0
        for _ in range(repeats + 1):
            cpu0, t0 = time.process_time(), time.perf_counter()
            on_ranks(comms, lambda c: c.all_gather(xs[c.rank], [n] * world, 0))
            times.append(time.perf_counter() - t0)
            cpu += time.process_time() - cpu0
        times = sorted(times[1:])
        moved_mb = mb_per_rank * world * (world - 1) * (repeats + 1)  # delivered to all ranks
        out[name] = {
            "median_ms": round(1000 * times[len(times) // 2], 2),
            "min_ms": round(1000 * times[0], 2),
            "cpu_ms_per_mb": round(1000 * cpu / moved_mb, 3),
        }
    for c in tcp:
        c.close()
    local.close()
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(benchmark_all_gather(), indent=2))  # a script's output, not a log
