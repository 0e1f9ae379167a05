"""Galaxy's tile-based overlap of ring communication with GEMMs (hmp prefill).

One tile is one ring chunk (the rows S_c of a device c). Finer-grained pipelining happens
inside the transport, which moves each chunk in pieces.

All-gather side: the column-parallel GEMM (QKV, MLP up) runs on this rank's own chunk at once,
then on each other chunk as it arrives (ring order i-1, i-2, ...), while the ring moves the next.

Reduce-scatter side: the row-parallel GEMM (out-projection, MLP down) computes partial tiles in
the order the ring needs them (chunk i-1 first, this rank's own chunk last), and hands each to
the ring as soon as it is computed; the ring adds and forwards it while the next tile computes.

Results equal the non-overlapped path up to summation order (same partials, same ring sums).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from edge_worker.comm.base import Communicator, reduce_order, ring_order


def gather_then_project(
    comm: Communicator, x: Tensor, sizes: list[int], project: Callable[[Tensor], Tensor]
) -> Tensor:
    """project(all_gather(x)) along dim 1, computed chunk by chunk as chunks arrive.

    x: (B, T_i, h) this rank's rows -> (B, T, d) with d = project's output width.
    """
    stream = comm.all_gather_stream(x, sizes, dim=1)
    out: list[Tensor | None] = [None] * comm.world_size
    for c in ring_order(comm.rank, comm.world_size):
        out[c] = project(stream.part(c))  # (B, T_c, d); the ring moves the next chunk meanwhile
    return torch.cat([t for t in out if t is not None], dim=1)


def project_then_reduce_scatter(
    comm: Communicator, y: Tensor, sizes: list[int], project: Callable[[Tensor], Tensor]
) -> Tensor:
    """reduce_scatter(project(y)) along dim 1, feeding the ring one partial tile at a time.

    y: (B, T, d) every row, this rank's share of heads/columns -> (B, T_i, h) reduced rows.
    """
    stream = comm.reduce_scatter_stream(sizes, dim=1)
    starts = [sum(sizes[:c]) for c in range(len(sizes))]
    for c in reduce_order(comm.rank, comm.world_size):
        # Safe to hand over at once: a partial tile is never written again after this point.
        stream.add(c, project(y.narrow(1, starts[c], sizes[c])))
    return stream.wait()


def gather_project_reduce(
    comm: Communicator, x: Tensor, sizes: list[int], block: Callable[[Tensor], Tensor]
) -> Tensor:
    """reduce_scatter(block(all_gather(x))) for a row-wise block (the MLP), fused per chunk.

    Each chunk goes through the whole block (up, activation, down) as soon as it arrives, and
    its partial goes straight back into the ring. The own chunk is computed first (nothing to
    wait for) but fed last, as the ring order requires.
    """
    gather = comm.all_gather_stream(x, sizes, dim=1)
    reduce = comm.reduce_scatter_stream(sizes, dim=1)
    own = block(x)  # (B, T_i, h) partial for this rank's own rows, while chunk i-1 travels
    for c in reduce_order(comm.rank, comm.world_size)[:-1]:
        reduce.add(c, block(gather.part(c)))
    reduce.add(comm.rank, own)
    return reduce.wait()
