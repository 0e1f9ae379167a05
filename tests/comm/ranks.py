"""Helpers for ring tests: run a function on every rank at once, compare with the in-process
group, and build test tensors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from edge_worker.comm.base import Communicator
from edge_worker.comm.local import LocalGroup

T = TypeVar("T")
C = TypeVar("C", bound=Communicator)
SIZES = [5, 20, 12, 9]  # rows per rank, uneven; a ring of n uses the first n


def outcomes(comms: Sequence[C], fn: Callable[[C], T]) -> list[T | Exception]:
    """Run fn on every rank in its own thread; each rank's result or exception, by rank."""
    results: list[T | Exception] = [RuntimeError("rank did not finish in 30 s")] * len(comms)

    def run(i: int) -> None:
        try:
            results[i] = fn(comms[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(comms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def on_ranks(comms: Sequence[C], fn: Callable[[C], T]) -> list[T]:
    """Run fn on every rank in its own thread; raise the first rank's exception, if any."""
    results = outcomes(comms, fn)
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results  # type: ignore[return-value]


def on_local(n: int, fn: Callable[[Communicator], T]) -> list[T]:
    group = LocalGroup(n, timeout=10)
    try:
        return on_ranks(group.comms, fn)
    finally:
        group.close()


def shaped(dim: int, rows: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A (2, 3, 4) tensor, except `rows` along `dim`."""
    shape = [2, 3, 4]
    shape[dim] = rows
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
