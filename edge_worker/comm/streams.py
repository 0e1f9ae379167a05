"""The TCP ring's streaming collectives, for the engine's tile-based overlap (base.py).

`RingGatherStream.part(c)` returns chunk c of an all-gather as soon as its last piece has
landed, while later chunks are still travelling. `RingReduceStream.add(c, partial)` hands
partial c of a reduce-scatter to the ring, which sends it (chunk r-1) or adds it to the piece
arriving for it as soon as both exist. The pieces themselves move on the link threads
(link.py) along the schedules of ring.py; these classes only wait for and feed them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch
from torch import Tensor

from edge_worker.comm.base import GatherStream, ReduceScatterStream, Work, reduce_order
from edge_worker.comm.call import RingCall, RingWork
from edge_worker.comm.ring import reduce_feed_call
from edge_worker.comm.waits import blocking, handing_off
from edge_worker.errors import CommTimeout


class RingGatherStream(GatherStream):
    """An all-gather whose chunks can be used one by one, as soon as each has landed."""

    def __init__(
        self, call: RingCall, work: Work, x: Tensor, sizes: list[int], dim: int, rank: int,
        timeout: float,
    ) -> None:  # fmt: skip
        self.call, self.work, self.mine, self.sizes = call, work, x, sizes
        self.dim, self.rank, self.timeout = dim % x.dim(), rank, timeout

    def part(self, r: int) -> Tensor:
        if r == self.rank:
            return self.mine
        if self.call.events[r].is_set():  # landed already: no wait, nothing handed off
            _raise_failure(self.call)
        else:
            handing_off()  # before the wait's clock starts: a stretched device's compute
            start = time.monotonic()
            _wait_for(self.call, self.call.events[r], self.timeout, f"rank {r}'s chunk")
            if isinstance(self.work, RingWork):  # compute waited on the ring: the trace says so
                self.work.waited(time.monotonic() - start)
        assert self.call.buffer is not None
        start = sum(self.sizes[:r])
        return self.call.buffer[start : start + self.sizes[r]].movedim(0, self.dim)

    def wait(self) -> Tensor:
        return self.work.wait()


class RingReduceStream(ReduceScatterStream):
    """A reduce-scatter fed partial by partial in `reduce_order`; issued at the first `add`."""

    def __init__(
        self, start: Callable[[RingCall], Work], sizes: list[int], dim: int, rank: int, world: int
    ) -> None:
        self.start, self.sizes, self.dim, self.rank, self.world = start, sizes, dim, rank, world
        self.order = reduce_order(rank, world)
        self.call: RingCall | None = None
        self.work: Work | None = None
        self.fed = 0

    def add(self, r: int, partial: Tensor) -> None:
        self._check_turn(r)  # before the copy: a fed slot may be in the ring's hands
        self.slot(r, tuple(partial.shape), partial.dtype).copy_(partial)
        self.commit(r)

    def slot(self, r: int, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """Where partial r goes in the ring's buffer, shaped `shape`: a GEMM may write it there
        directly (any time before its turn), then `commit(r)` hands it to the ring."""
        if shape[self.dim] != self.sizes[r]:
            raise ValueError(
                f"partial for rank {r} has {shape[self.dim]} rows, not {self.sizes[r]}"
            )
        rest = tuple(s for d, s in enumerate(shape) if d != self.dim)
        if self.call is None:
            like = torch.empty(shape, dtype=dtype, device="meta")
            self.call = reduce_feed_call(like, self.sizes, self.dim, self.rank, self.world)
            self.work = self.start(self.call)
        assert self.call.buffer is not None
        if self.call.buffer.dtype != dtype or tuple(self.call.buffer.shape[1:]) != rest:
            raise ValueError(f"partial {shape} {dtype} unlike the first")
        start = sum(self.sizes[:r])
        return self.call.buffer[start : start + self.sizes[r]].movedim(0, self.dim)

    def commit(self, r: int) -> None:
        """Partial r is in its slot: the ring may add and forward it."""
        self._check_turn(r)
        if self.call is None:
            raise RuntimeError(f"partial {r} was committed before any slot was asked for")
        handing_off()
        self.call.feed(r, first=self.fed == 0)
        self.fed += 1

    def _check_turn(self, r: int) -> None:
        if self.fed == self.world or r != self.order[self.fed]:
            raise ValueError(f"feed reduce-scatter partials in the order {self.order}, not {r}")

    def wait(self) -> Tensor:
        if self.work is None or self.fed < self.world:
            raise RuntimeError(f"reduce-scatter fed {self.fed} of {self.world} partials")
        return self.work.wait()


def _wait_for(call: RingCall, event: threading.Event, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    with blocking():
        while not event.wait(0.05):
            if call.future.done():
                break
            if time.monotonic() > deadline:
                raise CommTimeout(f"{what} did not arrive within {timeout:.1f} s")
    _raise_failure(call)


def _raise_failure(call: RingCall) -> None:
    """Raise what ended `call`, if it failed (a lost peer, a timeout, close())."""
    if call.future.done() and call.future.exception() is not None:
        raise call.future.exception()  # type: ignore[misc]
