"""Ring communication, priced: a link's transfer time, a pipelined ring collective, and the
overlapped ring chunk by chunk (when each device holds each chunk), for the cost model.

A transfer of b bytes from device i to j takes b / min(bandwidth_i, bandwidth_j) plus the mean
of their latencies; the pipelined ring moves a collective in max-over-links(bytes on that link
/ link rate) plus one latency per step. Relays cut through: the transport sends every ring
chunk in `PIECES` pieces (edge_worker/comm/framing.py), and a hop forwards the first piece
before the last has arrived.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.planner.profiles import DeviceProfile

PIECES = 4  # edge_worker/comm/framing.py PIECES_PER_CHUNK (the planner stays off the transport)


# ----- links --------------------------------------------------------------------------------


def link_ms(a: DeviceProfile, b: DeviceProfile, nbytes: float) -> float:
    rate = min(a.bandwidth_mbps, b.bandwidth_mbps) * 1e6 / 8
    return nbytes / rate * 1e3 + (a.latency_ms + b.latency_ms) / 2


def ring_ms(ring: Sequence[DeviceProfile], chunk_bytes: Sequence[float], skip: int) -> float:
    """A pipelined ring collective. Link i -> i+1 carries every chunk except chunk (i + skip):
    skip=1 for all-gather (the next rank's own chunk), 0 for reduce-scatter (a chunk's partial
    sum ends at its owner)."""
    n = len(ring)
    if n == 1:
        return 0.0
    worst = 0.0
    for i in range(n):
        a, b = ring[i], ring[(i + 1) % n]
        carried = sum(chunk_bytes) - chunk_bytes[(i + skip) % n]
        rate = min(a.bandwidth_mbps, b.bandwidth_mbps) * 1e6 / 8
        worst = max(worst, carried / rate * 1e3)
    latency = max(d.latency_ms for d in ring)
    return worst + (n - 1) * latency


def all_gather_ms(ring: Sequence[DeviceProfile], chunk_bytes: Sequence[float]) -> float:
    return ring_ms(ring, chunk_bytes, skip=1)


def reduce_scatter_ms(ring: Sequence[DeviceProfile], chunk_bytes: Sequence[float]) -> float:
    return ring_ms(ring, chunk_bytes, skip=0)


def all_reduce_ms(ring: Sequence[DeviceProfile], nbytes: float) -> float:
    even = [nbytes / len(ring)] * len(ring)
    return reduce_scatter_ms(ring, even) + all_gather_ms(ring, even)


# ----- the overlapped ring, chunk by chunk ----------------------------------------------------


def _hop(a: DeviceProfile, b: DeviceProfile, nbytes: float) -> tuple[float, float]:
    """(ms on the wire, latency ms) of `nbytes` from a to b."""
    rate = min(a.bandwidth_mbps, b.bandwidth_mbps) * 1e6 / 8
    return nbytes / rate * 1e3, (a.latency_ms + b.latency_ms) / 2


def _pipelined(
    ring: Sequence[DeviceProfile],
    chunk_bytes: Sequence[float],
    ready: Sequence[Sequence[float]],
    shift: int,
) -> list[list[float]]:
    """held[i][c]: when device i holds all of chunk c in a pipelined ring pass. At step s the
    link i-1 -> i carries chunk (i - shift - s) once device i-1 holds it and has its own part
    of it ready (ready[i-1][c]); relays cut through: a hop starts with the chunk's first piece
    and ends no sooner than one piece after the chunk's last piece is in."""
    n = len(ring)
    first = [[0.0] * n for _ in range(n)]
    full = [[0.0] * n for _ in range(n)]
    free = [0.0] * n  # the link leaving device i is busy until then
    for step in range(1, n):
        for i in range(n):
            src, c = (i - 1) % n, (i - shift - step) % n
            own = ready[src][c]
            wire, lat = _hop(ring[src], ring[i], chunk_bytes[c])
            start = max(first[src][c], own, free[src])
            end = max(start + wire, max(full[src][c], own) + wire / PIECES)
            free[src] = end
            first[i][c], full[i][c] = start + wire / PIECES + lat, end + lat
    return full


def gather_arrivals(
    ring: Sequence[DeviceProfile], chunk_bytes: Sequence[float]
) -> list[list[float]]:
    """arrived[i][c]: ms after the start at which device i holds all of chunk c, in a pipelined
    ring all-gather (link i-1 -> i carries chunks i-1, i-2, ... in that order)."""
    n = len(ring)
    return _pipelined(ring, chunk_bytes, [[0.0] * n for _ in range(n)], shift=0)


def reduce_finish(
    ring: Sequence[DeviceProfile], chunk_bytes: Sequence[float], ready: Sequence[Sequence[float]]
) -> list[float]:
    """When each device holds its own fully reduced chunk in a pipelined ring reduce-scatter,
    where ready[i][c] is when device i has computed its partial tile of chunk c. Chunk c starts
    at device c+1 and travels the ring to c; every device adds its tile before passing it on."""
    full = _pipelined(ring, chunk_bytes, ready, shift=1)
    return [max(full[i][i], ready[i][i]) for i in range(len(ring))]
