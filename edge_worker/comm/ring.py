"""The ring schedule of one call: which piece of which chunk moves at which step (no sockets).

For rank r of N, chunk c is rank c's rows (the dimension being split moved to the front, so
each chunk is one contiguous slab; `all_reduce` splits the flattened tensor evenly). Each
chunk travels as pieces (`framing.piece_bounds`). Over N-1 steps:

    all-gather      step s: send chunk r-s, receive chunk r-s-1 into the output, relay it
                    at step s+1 (except at the last step).
    reduce-scatter  step s: send the partial sum of chunk r-s-1, receive that of chunk r-s-2,
                    add this rank's rows to it and forward it at step s+1; at the last step
                    chunk r arrives, and with this rank's rows added it is the result.
    all-reduce      reduce-scatter (steps 0..N-2) whose finished pieces are sent on at once as
                    the all-gather of steps N-1..2N-3; a tensor of at most 64 KiB (a decode
                    step) is all-gathered whole instead and summed in rank order: half the
                    steps, and the same sum as the in-process group.

Each builder returns a `RingCall` (call.py) listing the pieces this rank sends from its own
data and the pieces it expects, in wire order, each with where it lands, what is added to it
and where it is relayed. Sums run in the same order as the in-process `LocalGroup`
reduce-scatter (starting after the owner). The streaming forms (streams.py) use the same
schedules, with an event per chunk.
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

from edge_worker.comm import framing as F
from edge_worker.comm.call import In, Out, RingCall, Slab

SMALL_ALL_REDUCE_BYTES = 64 * 1024  # at most this: all-gather whole tensors, then add locally


def all_gather_call(
    x: Tensor, sizes: list[int], dim: int, rank: int, world: int, stream: bool = False
) -> RingCall:
    dim %= x.dim()
    moved = x.detach().movedim(dim, 0)  # (rows_i, *rest): chunks become contiguous slabs
    out = torch.empty((sum(sizes), *moved.shape[1:]), dtype=x.dtype)  # (S, *rest)
    row0 = sum(sizes[:rank])
    out[row0 : row0 + sizes[rank]].copy_(moved)
    call = RingCall(
        "all_gather", F.Op.ALL_GATHER, x.dtype, lambda: out.movedim(0, dim).contiguous()
    )
    chunks = _chunks(sizes, math.prod(moved.shape[1:]))
    _gather_steps(call, Slab(out), chunks, rank, world, first_step=0, send_own=True)
    if stream:
        call.buffer, call.events = out, [threading.Event() for _ in range(world)]
        _mark_landings(call, chunks, rank, world)
    return call


def reduce_scatter_call(x: Tensor, sizes: list[int], dim: int, rank: int, world: int) -> RingCall:
    dim %= x.dim()
    src = x.detach().movedim(dim, 0).contiguous()  # (S, *rest)
    return _reduce_scatter(src, sizes, dim, rank, world, fed=False)


def reduce_feed_call(first: Tensor, sizes: list[int], dim: int, rank: int, world: int) -> RingCall:
    """A reduce-scatter whose partials arrive one chunk at a time (shaped like `first`)."""
    dim %= first.dim()
    rest = first.movedim(dim, 0).shape[1:]
    src = torch.empty((sum(sizes), *rest), dtype=first.dtype)  # (S, *rest), filled by feed()
    return _reduce_scatter(src, sizes, dim, rank, world, fed=True)


def _reduce_scatter(
    src: Tensor, sizes: list[int], dim: int, rank: int, world: int, fed: bool
) -> RingCall:
    result = torch.empty((sizes[rank], *src.shape[1:]), dtype=src.dtype)  # (S_i, *rest)
    call = RingCall(
        "reduce_scatter",
        F.Op.REDUCE_SCATTER,
        src.dtype,
        lambda: result.movedim(0, dim).contiguous(),
    )
    if fed:
        call.buffer, call.events = src, [threading.Event() for _ in range(world)]
    chunks = _chunks(sizes, math.prod(src.shape[1:]))
    scratch = Slab(torch.empty_like(src))
    _reduce_steps(call, Slab(src), scratch, chunks, rank, world, Slab(result), 0, None)
    return call


def all_reduce_call(x: Tensor, rank: int, world: int) -> RingCall:
    src = x.detach().contiguous().reshape(-1)  # (numel,)
    n = src.numel()
    if n * src.element_size() <= SMALL_ALL_REDUCE_BYTES:
        # Latency-bound (a decode step): N-1 steps instead of 2(N-1), sum in rank order.
        parts = torch.empty((world, n), dtype=x.dtype)  # (N, numel)
        parts[rank].copy_(src)
        call = RingCall("all_reduce", F.Op.ALL_REDUCE, x.dtype, lambda: _sum_rows(parts, x.shape))
        _gather_steps(call, Slab(parts), _chunks([1] * world, n), rank, world, 0, send_own=True)
        return call
    chunks = _chunks([n // world + (1 if i < n % world else 0) for i in range(world)], 1)
    out = torch.empty_like(src)
    call = RingCall("all_reduce", F.Op.ALL_REDUCE, x.dtype, lambda: out.view(x.shape))
    result, scratch = Slab(out), Slab(torch.empty_like(src))
    _reduce_steps(
        call, Slab(src), scratch, chunks, rank, world, result, chunks[rank].start, world - 1
    )
    _gather_steps(call, result, chunks, rank, world, first_step=world - 1, send_own=False)
    return call


def send_call(x: Tensor) -> RingCall:
    """A point-to-point tensor: its shape (SEND_META), then its bytes in pieces (SEND_DATA)."""
    t = x.detach().contiguous()
    call = RingCall("send", F.Op.SEND_DATA, t.dtype, lambda: x)
    call.initial.append(Out(F.Op.SEND_META, 0, 0, F.encode_shape(t.shape)))
    slab = Slab(t)
    for i, a, b in slab.pieces(range(t.numel())):
        call.initial.append(Out(F.Op.SEND_DATA, 0, i, slab.bytes(a, b)))
    return call


def bye_call() -> RingCall:
    """The last frame on a link from a rank that closes with nothing pending."""
    call = RingCall("bye", F.Op.BYE, torch.uint8, lambda: torch.empty(0))
    call.initial.append(Out(F.Op.BYE, 0, 0, b""))
    return call


def _gather_steps(
    call: RingCall, buf: Slab, chunks: list[range], r: int, n: int, first_step: int, send_own: bool
) -> None:
    if send_own:
        for i, a, b in buf.pieces(chunks[r]):
            call.initial.append(Out(call.code, first_step, i, buf.bytes(a, b)))
    for s in range(n - 1):
        for i, a, b in buf.pieces(chunks[(r - s - 1) % n]):
            relay = Out(call.code, first_step + s + 1, i, buf.bytes(a, b)) if s < n - 2 else None
            call.n_relays += relay is not None
            call.expected.append(In(first_step + s, i, buf.bytes(a, b), forward=relay))


def _reduce_steps(
    call: RingCall,
    src: Slab,
    scratch: Slab,
    chunks: list[range],
    r: int,
    n: int,
    result: Slab,
    result_at: int,
    then_step: int | None,
) -> None:
    """Partial sums travel in `scratch`; chunk r lands in `result` from element `result_at`
    and, if `then_step` is given, is forwarded again as that step (all-reduce). With
    `call.events` (a fed reduce-scatter) step 0 waits for feed(), and each add for its chunk."""
    first = call.deferred if call.events else call.initial
    for i, a, b in src.pieces(chunks[(r - 1) % n]):
        first.append(Out(call.code, 0, i, src.bytes(a, b)))
    call.n_relays += len(call.deferred)
    for s in range(n - 1):
        c = (r - s - 2) % n
        last = s == n - 2
        dest, shift = (result, result_at - chunks[c].start) if last else (scratch, 0)
        step = then_step if last else s + 1
        ready = call.events[c] if call.events else None
        for i, a, b in src.pieces(chunks[c]):
            landing = dest.bytes(a + shift, b + shift)
            forward = Out(call.code, step, i, landing) if step is not None else None
            call.n_relays += forward is not None
            acc = dest.flat[a + shift : b + shift]
            call.expected.append(In(s, i, landing, acc, src.flat[a:b], forward, ready))


def _mark_landings(call: RingCall, chunks: list[range], r: int, n: int) -> None:
    """Set chunk c's event when its last piece has landed (at once for empty and own chunks)."""
    last_piece: dict[int, int] = {}
    for k, want in enumerate(call.expected):
        last_piece[(r - want.step - 1) % n] = k
    for c, event in enumerate(call.events):
        if c in last_piece:
            k = last_piece[c]
            call.expected[k] = call.expected[k]._replace(landed=event)
        else:
            event.set()


def _sum_rows(parts: Tensor, shape: torch.Size) -> Tensor:
    total = parts[0].clone()
    for p in parts[1:]:
        total += p
    return total.view(shape)


def _chunks(sizes: list[int], row: int) -> list[range]:
    """Element ranges of consecutive chunks of `sizes` rows of `row` elements each."""
    out, start = [], 0
    for s in sizes:
        out.append(range(start * row, (start + s) * row))
        start += s
    return out
