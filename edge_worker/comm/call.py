"""One call in flight on the TCP ring: its pieces, its byte counts, its completion (no sockets).

A `RingCall` lists the pieces sent from this rank's own data (`initial`, all at step 0) and
the pieces it expects, in wire order (`expected`: `In`, each naming the destination memory a
piece lands in, the add to do once it has landed, and the piece to relay). What arrives is
relayed by the receiver thread as soon as it lands (link.py), which is what makes the ring
pipelined rather than store-and-forward. The schedules that fill a call are built in ring.py.

`Slab` is the zero-copy bridge between a tensor and the socket: `recv_into` writes straight
into the tensor's memory and `sendall` reads straight from it, so no byte is copied or touched
by Python on the data path. `RingWork` is the handle a caller waits on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from edge_worker.comm import framing as F
from edge_worker.comm.base import Work
from edge_worker.comm.waits import blocking, handing_off
from edge_worker.errors import CommTimeout


@dataclass
class CallStats:
    """One call: bytes on the wire (headers included) and where its time went, in seconds."""

    op: str
    bytes_sent: int = 0
    bytes_received: int = 0
    elapsed_s: float = 0.0  # from issue to completion
    wait_s: float = 0.0  # the caller blocked in wait()


@dataclass
class CommStats:
    """Totals over a communicator's completed calls, and the most recent calls themselves."""

    calls: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    wait_s: float = 0.0
    recent: deque[CallStats] = field(default_factory=lambda: deque(maxlen=256))


class Slab:
    """A contiguous tensor seen flat: as elements (for adds) and as bytes (for the socket)."""

    def __init__(self, t: Tensor) -> None:
        self.flat = t.detach().reshape(-1)
        self.es = t.element_size()
        self.raw = self.flat.view(torch.uint8).numpy()  # bfloat16 too: numpy sees bytes

    def bytes(self, a: int, b: int) -> memoryview:
        """Elements [a, b) as a writable memoryview of the tensor's own memory."""
        return self.raw[a * self.es : b * self.es].data

    def pieces(self, chunk: range) -> list[tuple[int, int, int]]:
        """(piece index, start, stop) in elements of this slab, for the pieces of `chunk`."""
        bounds = F.piece_bounds(len(chunk), self.es)
        return [(i, chunk.start + a, chunk.start + b) for i, (a, b) in enumerate(bounds)]


class Out(NamedTuple):
    """A piece to send: its frame's op, step and piece index, and its bytes."""

    op: F.Op
    step: int
    piece: int
    payload: memoryview | bytes


class In(NamedTuple):
    """An expected piece: land it in `dest`; then, once `ready` is set (if given), `acc += own`;
    then send `forward` and set `landed` (if given)."""

    step: int
    piece: int
    dest: memoryview
    acc: Tensor | None = None
    own: Tensor | None = None
    forward: Out | None = None
    ready: threading.Event | None = None
    landed: threading.Event | None = None


def resolve(
    f: Future[Tensor], value: Tensor | None = None, error: BaseException | None = None
) -> None:
    """Complete `f` unless it already failed (a lost peer or close() got there first)."""
    try:
        if error is not None:
            f.set_exception(error)
        else:
            f.set_result(value)  # type: ignore[arg-type]
    except InvalidStateError:
        pass


class RingCall:
    """One call in flight: what to send, what to expect, and how to build its result."""

    def __init__(
        self, name: str, code: F.Op, dtype: torch.dtype, finish: Callable[[], Tensor]
    ) -> None:
        self.code, self.dtype, self.finish = code, dtype, finish
        self.seq = 0  # set at issue: collectives count per ring, sends per link
        self.stats = CallStats(name)
        self.infer = torch.is_inference_mode_enabled()  # IO threads mirror the caller's mode
        self.initial: list[Out] = []
        self.relays: queue.SimpleQueue[Out | None] = queue.SimpleQueue()
        self.n_relays = 0
        self.expected: list[In] = []
        self.pos = 0  # receiver progress through `expected`
        self.future: Future[Tensor] = Future()
        self.events: list[threading.Event] = []  # per chunk, for the streaming forms
        self.deferred: list[Out] = []  # a fed reduce-scatter's step-0 pieces, sent on feed()
        self.buffer: Tensor | None = None  # the streaming forms' (S, *rest) working tensor
        self._parts = 2  # the sending side and the receiving side
        self._lock = threading.Lock()

    def feed(self, chunk: int, first: bool) -> None:
        """This rank's partial for `chunk` is in `buffer` (a fed reduce-scatter)."""
        if first:
            for out in self.deferred:
                self.relays.put(out)
        self.events[chunk].set()

    def abort(self) -> None:
        """Release the link threads waiting on this call (it has failed)."""
        self.relays.put(None)
        for e in self.events:
            e.set()

    @property
    def n_out(self) -> int:
        return len(self.initial) + self.n_relays

    def part_done(self) -> None:
        """Called once when all pieces are sent and once when all have landed."""
        with self._lock:
            self._parts -= 1
            if self._parts:
                return
        try:
            with torch.inference_mode(self.infer):
                resolve(self.future, value=self.finish())
        except Exception as exc:  # a bug in finishing must not leave the caller waiting
            resolve(self.future, error=exc)


class RingWork(Work):
    """The caller's handle on a call: `wait()` defaults to the ring's `timeout`, names `who`
    in its CommTimeout and reports the time spent waiting to `on_wait(stats, seconds)`."""

    def __init__(
        self,
        future: Future[Tensor],
        stats: CallStats,
        timeout: float,
        who: str,
        on_wait: Callable[[CallStats, float], None],
    ) -> None:
        super().__init__(future)
        self._stats, self._timeout, self._who, self._on_wait = stats, timeout, who, on_wait

    def waited(self, seconds: float) -> None:
        """The caller blocked `seconds` on this call outside `wait()` (a streamed chunk)."""
        self._on_wait(self._stats, seconds)

    def wait(self, timeout: float | None = None) -> Tensor:
        limit = self._timeout if timeout is None else timeout
        if self._future is None or self._future.done():  # nothing to wait for, nothing to
            return super().wait(limit)  # hand off: a stretched device's compute carries on
        handing_off()  # before the wait's clock starts: a stretched device's compute
        start = time.monotonic()
        try:
            with blocking():
                return super().wait(limit)
        except CommTimeout as exc:
            raise CommTimeout(
                f"{self._who}'s {self._stats.op} did not finish within "
                f"{limit:.1f} s: a peer is stalled or the deadline is too short"
            ) from exc
        finally:
            self._on_wait(self._stats, time.monotonic() - start)
