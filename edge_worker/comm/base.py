"""The `Communicator` interface: the only way engine code talks to other ranks.

Collectives follow torch.distributed's meaning but take *uneven* split sizes:

    all_gather(x, sizes, dim)      rank i holds x with x.shape[dim] == sizes[i];
                                   every rank gets the concatenation along `dim` (sum(sizes)).
    reduce_scatter(x, sizes, dim)  every rank holds a full-size x (a partial sum);
                                   rank i gets rows sizes-slice i of the element-wise sum.
    all_reduce(x)                  every rank gets the element-wise sum.
    send(x, dst) / recv(src)       point to point; the receiver learns dtype and shape from the
                                   sender.

Each has an `*_async` twin that returns a `Work` handle, so compute can proceed while bytes
move; `wait()` returns the result. Calls on one communicator complete in the order they were
issued. With a world of one every collective returns its input, so single-device code is the
same code. Every wait has a deadline: a late peer raises `CommTimeout`, a vanished one
`WorkerLost`; nothing hangs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import torch
from torch import Tensor

from edge_worker.errors import CommTimeout


class Work:
    """A pending communication; `wait()` returns its result tensor (or raises its error)."""

    def __init__(self, future: Future[Tensor] | None = None, value: Tensor | None = None) -> None:
        self._future, self._value = future, value

    @classmethod
    def done(cls, value: Tensor) -> Work:
        return cls(value=value)

    def wait(self, timeout: float | None = None) -> Tensor:
        if self._future is None:
            assert self._value is not None
            return self._value
        try:
            return self._future.result(timeout)
        except FutureTimeout as exc:
            raise CommTimeout(f"communication did not finish within {timeout} s") from exc


class Communicator(ABC):
    """A rank's view of its group: `rank` in 0..world_size-1, ranks ordered as the ring."""

    rank: int
    world_size: int

    # ----- asynchronous primitives that implementations provide -----

    @abstractmethod
    def _all_gather(self, x: Tensor, sizes: list[int], dim: int) -> Work: ...

    @abstractmethod
    def _reduce_scatter(self, x: Tensor, sizes: list[int], dim: int) -> Work: ...

    @abstractmethod
    def _all_reduce(self, x: Tensor) -> Work: ...

    @abstractmethod
    def send_async(self, x: Tensor, dst: int) -> Work: ...

    @abstractmethod
    def recv_async(self, src: int) -> Work: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets or threads; the communicator is unusable afterwards."""

    # ----- public API: world-of-one shortcuts and argument checks -----

    def all_gather_async(self, x: Tensor, sizes: list[int], dim: int) -> Work:
        self._check_sizes(sizes)
        if x.shape[dim] != sizes[self.rank]:
            raise ValueError(
                f"rank {self.rank} holds {x.shape[dim]} rows along dim {dim}, "
                f"but the split gives it {sizes[self.rank]}"
            )
        return Work.done(x) if self.world_size == 1 else self._all_gather(x, sizes, dim)

    def reduce_scatter_async(self, x: Tensor, sizes: list[int], dim: int) -> Work:
        self._check_sizes(sizes)
        if x.shape[dim] != sum(sizes):
            raise ValueError(
                f"reduce_scatter input has {x.shape[dim]} rows, split sums to {sum(sizes)}"
            )
        return Work.done(x) if self.world_size == 1 else self._reduce_scatter(x, sizes, dim)

    def all_reduce_async(self, x: Tensor) -> Work:
        return Work.done(x) if self.world_size == 1 else self._all_reduce(x)

    def all_gather(self, x: Tensor, sizes: list[int], dim: int) -> Tensor:
        return self.all_gather_async(x, sizes, dim).wait()

    def reduce_scatter(self, x: Tensor, sizes: list[int], dim: int) -> Tensor:
        return self.reduce_scatter_async(x, sizes, dim).wait()

    def all_reduce(self, x: Tensor) -> Tensor:
        return self.all_reduce_async(x).wait()

    def send(self, x: Tensor, dst: int) -> None:
        self.send_async(x, dst).wait()

    def recv(self, src: int) -> Tensor:
        return self.recv_async(src).wait()

    # ----- streaming forms, for overlapping GEMM tiles with the ring -----

    def all_gather_stream(self, x: Tensor, sizes: list[int], dim: int) -> GatherStream:
        """Start an all-gather whose chunks can be used one by one as they arrive.

        Ring arrival order on rank i is i-1, i-2, ..., i+1: `ring_order(rank, n)[1:]`.
        This default waits for the whole gather; a ring transport overrides it to hand out
        each chunk as soon as it has landed.
        """
        return _WholeGather(self.all_gather_async(x, sizes, dim), sizes, dim, self.rank, x)

    def reduce_scatter_stream(self, sizes: list[int], dim: int) -> ReduceScatterStream:
        """Start a reduce-scatter fed chunk by chunk: call `add(c, partial_rows_of_chunk_c)`
        for c in `reduce_order(rank, n)`, then `wait()` for this rank's reduced rows.

        This default buffers the partials and reduces at the end; a ring transport overrides
        it to forward each partial while the next one is being computed.
        """
        return _BufferedReduceScatter(self, sizes, dim)

    def _check_sizes(self, sizes: list[int]) -> None:
        if len(sizes) != self.world_size:
            raise ValueError(
                f"split {sizes} names {len(sizes)} ranks, the group has {self.world_size}"
            )


def ring_order(rank: int, n: int) -> list[int]:
    """Order in which rank `rank` holds all-gather chunks: its own, then i-1, i-2, ..."""
    return [(rank - s) % n for s in range(n)]


def reduce_order(rank: int, n: int) -> list[int]:
    """Order in which rank `rank` feeds reduce-scatter partials: i-1, i-2, ..., and its own
    chunk last (a chunk's partial sum travels the ring and ends at its owner)."""
    return [(rank - 1 - s) % n for s in range(n)]


class GatherStream:
    """Chunks of an all-gather, available one by one."""

    def part(self, r: int) -> Tensor:
        """Rank r's chunk (blocks until it has arrived)."""
        raise NotImplementedError

    def wait(self) -> Tensor:
        """The whole gathered tensor."""
        raise NotImplementedError


class ReduceScatterStream:
    def add(self, r: int, partial: Tensor) -> None:
        """This rank's partial sum for the rows of rank r's chunk."""
        raise NotImplementedError

    def slot(self, r: int, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor | None:
        """Where partial r may be written in place, then handed over with `commit(r)`; None
        when this stream has no such buffer (then use `add`)."""
        return None

    def commit(self, r: int) -> None:
        """Partial r has been written into its `slot`."""
        raise NotImplementedError

    def wait(self) -> Tensor:
        """This rank's rows, summed over all ranks."""
        raise NotImplementedError


class _WholeGather(GatherStream):
    def __init__(self, work: Work, sizes: list[int], dim: int, rank: int, mine: Tensor) -> None:
        self.work, self.sizes, self.dim, self.rank, self.mine = work, sizes, dim, rank, mine
        self._whole: Tensor | None = None

    def part(self, r: int) -> Tensor:
        if r == self.rank:
            return self.mine
        return self.wait().narrow(self.dim, sum(self.sizes[:r]), self.sizes[r])

    def wait(self) -> Tensor:
        if self._whole is None:
            self._whole = self.work.wait()
        return self._whole


class _BufferedReduceScatter(ReduceScatterStream):
    def __init__(self, comm: Communicator, sizes: list[int], dim: int) -> None:
        self.comm, self.sizes, self.dim = comm, sizes, dim
        self.parts: dict[int, Tensor] = {}
        self.work: Work | None = None

    def add(self, r: int, partial: Tensor) -> None:
        if partial.shape[self.dim] != self.sizes[r]:
            raise ValueError(
                f"partial for rank {r} has {partial.shape[self.dim]} rows, not {self.sizes[r]}"
            )
        self.parts[r] = partial
        if len(self.parts) == len(self.sizes):
            whole = torch.cat([self.parts[i] for i in range(len(self.sizes))], dim=self.dim)
            self.work = self.comm.reduce_scatter_async(whole, self.sizes, self.dim)

    def wait(self) -> Tensor:
        if self.work is None:
            raise RuntimeError(
                f"reduce-scatter fed {len(self.parts)} of {len(self.sizes)} partials"
            )
        return self.work.wait()
