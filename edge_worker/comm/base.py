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

    def _check_sizes(self, sizes: list[int]) -> None:
        if len(sizes) != self.world_size:
            raise ValueError(
                f"split {sizes} names {len(sizes)} ranks, the group has {self.world_size}"
            )
