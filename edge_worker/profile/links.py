"""Link measurements over the data plane itself (the TCP ring, TLS included), not ICMP.

Every rank of a probe ring runs `measure_ring` at once:
- latency: small all-reduces; a ring all-reduce of a tiny tensor takes 2 (N - 1) hops, so the
  per-hop latency is the median round divided by that;
- bandwidth: each rank sends `nbytes` to its next neighbour while receiving as much from its
  previous one; the receive time gives the rate of the link previous -> this rank.
"""

from __future__ import annotations

import statistics
import time

import torch

from edge_worker.comm.base import Communicator


def measure_ring(comm: Communicator, nbytes: int = 4 << 20, rounds: int = 3) -> tuple[float, float]:
    """(latency ms per hop, Mbit/s of the link from the previous rank), measured on `comm`."""
    n = comm.world_size
    if n < 2:
        return 0.0, 0.0
    tiny = torch.zeros(1)
    comm.all_reduce(tiny)  # warm the path
    laps = []
    for _ in range(10):
        t0 = time.perf_counter()
        comm.all_reduce(tiny)
        laps.append(time.perf_counter() - t0)
    hop_ms = statistics.median(laps) / (2 * (n - 1)) * 1e3
    payload = torch.zeros(nbytes // 4)
    rates = []
    for _ in range(rounds):
        comm.all_reduce(tiny)  # line the ranks up before each round
        t0 = time.perf_counter()
        sent = comm.send_async(payload, (comm.rank + 1) % n)
        comm.recv((comm.rank - 1) % n)
        rates.append(nbytes * 8 / (time.perf_counter() - t0) / 1e6)
        sent.wait()
    return hop_ms, statistics.median(rates)
