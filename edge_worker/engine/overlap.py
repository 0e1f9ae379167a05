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
from functools import partial

import torch
from torch import Tensor

from edge_worker.comm.base import Communicator, ReduceScatterStream, reduce_order, ring_order
from edge_worker.spec.plan import offsets

Project = Callable[[Tensor, Tensor], Tensor]  # (rows, out): writes rows' projection into out


def gather_then_project(
    comm: Communicator, x: Tensor, sizes: list[int], width: int, project: Project,
    dtype: torch.dtype,
) -> Tensor:  # fmt: skip
    """project(all_gather(x)) along dim 1, computed chunk by chunk as chunks arrive.

    x: (B, T_i, h) this rank's rows -> (B, T, width) of `dtype`; each chunk's projection is
    written straight into its rows of the result (no concatenation).
    """
    stream = comm.all_gather_stream(x, sizes, dim=1)
    out = x.new_empty((x.shape[0], sum(sizes), width), dtype=dtype)
    for c in ring_order(comm.rank, comm.world_size):
        rows = offsets(sizes)[c]
        project(stream.part(c), out[:, rows.start : rows.stop])  # the ring moves the next
    return out


def project_then_reduce_scatter(
    comm: Communicator, y: Tensor, sizes: list[int], shape: tuple[int, int, int],
    dtype: torch.dtype, project: Project,
) -> Tensor:  # fmt: skip
    """reduce_scatter(project(y)) along dim 1, feeding the ring one partial tile at a time.

    y: (B, T, d) every row, this rank's share of heads/columns -> (B, T_i, h) reduced rows;
    `shape` is project's output for all rows, (B, T, h), of `dtype`.
    """
    stream = comm.reduce_scatter_stream(sizes, dim=1)
    for c in reduce_order(comm.rank, comm.world_size):
        # Safe to hand over at once: a partial tile is never written again after this point.
        span = offsets(sizes)[c]
        rows = y[:, span.start : span.stop]
        _feed(stream, c, (shape[0], sizes[c], shape[2]), dtype, partial(project, rows))
    return stream.wait()


def gather_project_reduce(
    comm: Communicator, x: Tensor, sizes: list[int], width: int, dtype: torch.dtype,
    block: Project,
) -> Tensor:  # fmt: skip
    """reduce_scatter(block(all_gather(x))) for a row-wise block (the MLP), fused per chunk.

    Each chunk goes through the whole block (up, activation, down) as soon as it arrives, and
    its partial goes straight back into the ring. The own chunk is computed first (nothing to
    wait for) but fed last, as the ring order requires. Partials are (B, T_c, width) of
    `dtype`, written by `block` straight into the ring's buffer when it offers one.
    """
    gather = comm.all_gather_stream(x, sizes, dim=1)
    reduce = comm.reduce_scatter_stream(sizes, dim=1)
    tile = (x.shape[0], sizes[comm.rank], width)
    own = reduce.slot(comm.rank, tile, dtype)
    own_partial = block(x, own if own is not None else torch.empty(tile, dtype=dtype))
    for c in reduce_order(comm.rank, comm.world_size)[:-1]:  # while chunk i-1 travels
        rows = gather.part(c)
        _feed(reduce, c, (x.shape[0], sizes[c], width), dtype, partial(block, rows))
    if own is None:
        reduce.add(comm.rank, own_partial)
    else:
        reduce.commit(comm.rank)
    return reduce.wait()


def _feed(
    stream: ReduceScatterStream, c: int, tile: tuple[int, int, int], dtype: torch.dtype,
    compute: Callable[[Tensor], object],
) -> None:  # fmt: skip
    """Compute partial c into the ring's own buffer when the stream offers one, and hand it
    over; else into a new tensor, which `add` copies."""
    slot = stream.slot(c, tile, dtype)
    if slot is None:
        out = torch.empty(tile, dtype=dtype)
        compute(out)
        stream.add(c, out)
    else:
        compute(slot)
        stream.commit(c)
