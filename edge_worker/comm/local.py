"""In-process communicator: N ranks as threads of one process (the engine's test double).

Each rank owns one communication thread, so its calls complete in issue order, as on a real
transport. A collective is a rendezvous: every rank posts its tensor, waits at a barrier, reads
everyone's tensors and computes its own result, then waits at a second barrier so no rank
overwrites its slot before all have read it. `abort()` breaks the barriers: every rank waiting
in a collective raises `WorkerLost` at once instead of waiting for its deadline.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from edge_worker.comm.base import Communicator, Work
from edge_worker.errors import CommTimeout, WorkerLost


class LocalGroup:
    """Shared state of `world_size` in-process ranks; `comms[i]` is rank i's communicator."""

    def __init__(self, world_size: int, timeout: float = 60.0) -> None:
        self.world_size, self.timeout = world_size, timeout
        self._barrier = threading.Barrier(world_size)
        self._slots: list[Tensor | None] = [None] * world_size
        self._mailboxes = {
            (s, d): queue.Queue[Tensor]() for s in range(world_size) for d in range(world_size)
        }
        self._aborted = threading.Event()
        self.comms = [LocalCommunicator(self, r) for r in range(world_size)]

    def abort(self) -> None:
        """Fail every pending and future collective (a rank crashed)."""
        self._aborted.set()
        self._barrier.abort()

    def close(self) -> None:
        for c in self.comms:
            c.close()

    def exchange(self, rank: int, x: Tensor) -> list[Tensor]:
        """Post `x`, wait for all ranks, return every rank's tensor (index = rank)."""
        self._slots[rank] = x
        self._wait(rank)
        posted = [t for t in self._slots if t is not None]
        self._wait(rank)
        return posted

    def _wait(self, rank: int) -> None:
        try:
            self._barrier.wait(self.timeout)
        except threading.BrokenBarrierError as exc:
            if self._aborted.is_set():
                raise WorkerLost("peer", f"rank {rank}'s group was aborted") from exc
            self._aborted.set()
            raise CommTimeout(
                f"rank {rank} waited {self.timeout:.0f} s for its peers in a collective"
            ) from exc


class LocalCommunicator(Communicator):
    def __init__(self, group: LocalGroup, rank: int) -> None:
        self.group, self.rank, self.world_size = group, rank, group.world_size
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"comm-rank{rank}")

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    def _submit(self, fn: Callable[[], Tensor]) -> Work:
        return Work(self._thread.submit(fn))

    def _all_gather(self, x: Tensor, sizes: list[int], dim: int) -> Work:
        return self._submit(lambda: torch.cat(self.group.exchange(self.rank, x), dim=dim))

    def _reduce_scatter(self, x: Tensor, sizes: list[int], dim: int) -> Work:
        def run() -> Tensor:
            parts = self.group.exchange(self.rank, x)
            start = sum(sizes[: self.rank])
            rows = [p.narrow(dim, start, sizes[self.rank]) for p in parts]
            # Sum in ring order starting after this rank, as a ring reduce-scatter would.
            total = rows[(self.rank + 1) % self.world_size].clone()
            for step in range(2, self.world_size + 1):
                total += rows[(self.rank + step) % self.world_size]
            return total

        return self._submit(run)

    def _all_reduce(self, x: Tensor) -> Work:
        def run() -> Tensor:
            parts = self.group.exchange(self.rank, x)
            total = parts[0].clone()
            for p in parts[1:]:
                total += p
            return total

        return self._submit(run)

    def send_async(self, x: Tensor, dst: int) -> Work:
        self.group._mailboxes[(self.rank, dst)].put(x)
        return Work.done(x)

    def recv_async(self, src: int) -> Work:
        box = self.group._mailboxes[(src, self.rank)]

        def run() -> Tensor:
            deadline, step = self.group.timeout, 0.1
            waited = 0.0
            while waited < deadline:
                if self.group._aborted.is_set():
                    raise WorkerLost(f"rank {src}", "group aborted while receiving")
                try:
                    return box.get(timeout=step)
                except queue.Empty:
                    waited += step
            raise CommTimeout(
                f"rank {self.rank} waited {deadline:.0f} s for a tensor from rank {src}"
            )

        return self._submit(run)
