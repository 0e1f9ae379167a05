"""One neighbour connection of the TCP ring: a sender thread and a receiver thread.

The sender takes whole calls from `calls`, in issue order, and writes each frame (header, then
payload) of the call's own pieces and then of its relays as the receiver produces them. The
receiver reads every frame header, then the payload with `recv_into` straight into the
destination memory the call's schedule names (ring.py), adds and relays as pieces land, keeps
received point-to-point tensors until `take` asks for them, and stops at a BYE.

A link knows its owner (the communicator, tcp.py) only as a `LinkOwner`: the three events it
reports from its threads. The owner turns socket errors into `WorkerLost` and fails the ring.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

import torch
from torch import Tensor

from edge_worker.comm import framing as F
from edge_worker.comm.call import CallStats, RingCall, Slab, resolve
from edge_worker.errors import CommError

log = logging.getLogger(__name__)
_INLINE_BYTES = 64 * 1024  # payloads this small are copied behind their header: one send
# How much lower than the compute thread's the link threads' priority is (nice). At 5, where
# they share a core with it, the compute keeps the core while both are ready (GEMMs at 0.97x
# their speed alone while the ring ran, against 0.76x at 0, in bench/dataplane-ab-sealed.json),
# and a link thread's weight (335 against 1024) still leaves it a quarter of a contended core.
# Off by default: with it at 5, the dashboard test that records from Chromium's fake microphone
# failed in both full `make test` runs (the start of the command misheard), cause not found.
RING_NICE = 0


class LinkOwner(Protocol):
    """What a link needs from its communicator: somewhere to report, from the link's own
    threads, the events that end its part in the ring."""

    def link_lost(self, link: Link, exc: OSError | EOFError) -> None:
        """The connection to `link.peer` broke, or the peer closed it without a goodbye."""

    def link_failed(self, link: Link, error: CommError) -> None:
        """The peer broke the frame protocol, or a bug stopped one of the link's threads."""

    def peer_left(self, link: Link, busy: bool) -> None:
        """The peer said goodbye (BYE); `busy`: a collective was still receiving from it."""


class Link:
    """One neighbour connection: a sender thread and a receiver thread.

    `peer` is the neighbour's rank and `peer_name` its name in errors; the threads are named
    `{tag}-send` and `{tag}-recv`. A point-to-point tensor the peer announces larger than
    `max_tensor_bytes` is refused before anything is allocated for it.
    """

    def __init__(
        self,
        owner: LinkOwner,
        sock: socket.socket,
        peer: int,
        peer_name: str,
        tag: str,
        max_tensor_bytes: int = 1 << 30,
    ) -> None:
        self.owner, self.sock, self.peer, self.peer_name = owner, sock, peer, peer_name
        self.max_tensor_bytes = max_tensor_bytes
        self.nice = RING_NICE  # the threads' priority below the compute's (read at creation)
        self.calls: queue.SimpleQueue[RingCall | None] = queue.SimpleQueue()  # to send
        self.collectives: queue.SimpleQueue[RingCall | None] = queue.SimpleQueue()  # to receive
        self.sent = self.received = 0  # point-to-point tensors, numbered per link
        self.left = False  # the peer said goodbye (BYE): nothing more will arrive
        self._inbox: deque[tuple[Tensor, int]] = deque()
        self._waiters: deque[tuple[Future[Tensor], CallStats]] = deque()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._guard, args=(loop,), name=f"{tag}-{kind}", daemon=True)
            for loop, kind in ((self._send_loop, "send"), (self._recv_loop, "recv"))
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def shutdown(self) -> None:
        """Wake both threads: blocked reads and writes fail, queues get a sentinel."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.calls.put(None)
        self.collectives.put(None)

    def join(self) -> None:
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(2.0)
        self.sock.close()

    def take(self, inner: Future[Tensor], stats: CallStats) -> bool:
        """Hand the next tensor received from this peer to `inner`, now or on arrival;
        False if there is none and the peer has left."""
        with self._lock:
            if not self._inbox:
                if self.left:
                    return False
                self._waiters.append((inner, stats))
                return True
            t, stats.bytes_received = self._inbox.popleft()
        resolve(inner, value=t)
        return True

    def has_waiters(self) -> bool:
        with self._lock:
            return bool(self._waiters)

    def _guard(self, loop: Callable[[], None]) -> None:
        name = self.peer_name
        _lower_priority(self.nice)
        try:
            loop()
        except (OSError, EOFError) as exc:
            self.owner.link_lost(self, exc)
        except ValueError as exc:
            self.owner.link_failed(self, CommError(f"protocol error on the link to {name}: {exc}"))
        except Exception as exc:
            log.exception("ring link to %s failed", name)
            self.owner.link_failed(self, CommError(f"ring link to {name} failed: {exc!r}"))

    def _send_loop(self) -> None:
        while (call := self.calls.get()) is not None:
            for k in range(call.n_out):
                out = call.initial[k] if k < len(call.initial) else call.relays.get()
                if out is None:
                    return
                n = len(out.payload)
                header = F.encode_header(out.op, call.dtype, call.seq, out.step, out.piece, n)
                if n <= _INLINE_BYTES:
                    self.sock.sendall(header + bytes(out.payload))
                else:
                    self.sock.sendall(header)
                    self.sock.sendall(out.payload)
                call.stats.bytes_sent += F.FRAME_BYTES + n
            call.part_done()

    def _read(self, view: memoryview) -> None:
        got, n = 0, len(view)
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise EOFError(f"{self.peer_name} closed the connection")
            got += k

    def _recv_loop(self) -> None:
        raw = bytearray(F.FRAME_BYTES)
        call: RingCall | None = None
        while True:
            self._read(memoryview(raw))
            h = F.decode_header(raw)
            if h.op == F.Op.SEND_META:
                self._recv_tensor(h, raw)
                continue
            if h.op == F.Op.BYE:
                self.owner.peer_left(self, busy=call is not None)
                return
            if call is None and (call := self.collectives.get()) is None:
                return
            want = call.expected[call.pos]
            got = (h.op, h.dtype, h.call, h.step, h.piece, h.nbytes)
            if got != (call.code, call.dtype, call.seq, want.step, want.piece, len(want.dest)):
                raise ValueError(
                    f"frame {got} does not match {call.stats.op} #{call.seq} (step {want.step}, "
                    f"piece {want.piece}, {len(want.dest)} bytes of {call.dtype}): the ranks "
                    "issued different collectives or splits"
                )
            self._read(want.dest)
            call.stats.bytes_received += F.FRAME_BYTES + h.nbytes
            if want.acc is not None and want.own is not None:
                if want.ready is not None:
                    want.ready.wait()  # a streamed reduce-scatter: this rank's partial is fed
                with torch.inference_mode(call.infer):
                    want.acc.add_(want.own)
            if want.forward is not None:
                call.relays.put(want.forward)
            if want.landed is not None:
                want.landed.set()  # a streamed all-gather: the chunk is complete
            call.pos += 1
            if call.pos == len(call.expected):
                call.part_done()
                call = None

    def _recv_tensor(self, meta: F.Header, raw: bytearray) -> None:
        if meta.call != self.received:
            raise ValueError(f"point-to-point tensor #{meta.call}, expected #{self.received}")
        self.received += 1
        if meta.nbytes > F.MAX_DIMS * 8:  # checked before the shape block is even read
            raise ValueError(f"a shape block of {meta.nbytes} bytes (at most {F.MAX_DIMS * 8})")
        shape = bytearray(meta.nbytes)
        self._read(memoryview(shape))
        dims = F.decode_shape(shape)
        size = math.prod(dims) * meta.dtype.itemsize
        if size > self.max_tensor_bytes:
            raise ValueError(
                f"{self.peer_name} announced a {size} byte tensor {dims}; this ring's plan needs "
                f"at most {self.max_tensor_bytes}"
            )
        with torch.inference_mode(False):  # a normal tensor: usable in and out of inference mode
            t = torch.empty(dims, dtype=meta.dtype)
        slab, total = Slab(t), F.FRAME_BYTES + meta.nbytes
        for i, a, b in slab.pieces(range(t.numel())):
            self._read(memoryview(raw))
            h, dest = F.decode_header(raw), slab.bytes(a, b)
            if (h.op, h.call, h.piece, h.nbytes) != (F.Op.SEND_DATA, meta.call, i, len(dest)):
                raise ValueError(f"tensor piece {h} does not follow its announcement {meta}")
            self._read(dest)
            total += F.FRAME_BYTES + h.nbytes
        with self._lock:
            if not self._waiters:
                self._inbox.append((t, total))
                return
            inner, stats = self._waiters.popleft()
        stats.bytes_received = total
        resolve(inner, value=t)


def _lower_priority(nice: int) -> None:
    """Lower this thread's priority by `nice` (Linux: per thread; elsewhere a no-op)."""
    if nice and hasattr(os, "setpriority"):
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
