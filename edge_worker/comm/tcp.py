"""The networked data plane: a TCP ring of ranks implementing `Communicator`.

Rank i connects to rank i+1 ("next") and accepts rank i-1 ("previous"), both mod N:

    c = TcpRingCommunicator(rank, world_size, token, host, port)  # listens; c.address is real
    c.connect(addresses)      # addresses[j] = rank j's (host, port); authenticated handshake
    ...collectives, send/recv to neighbours...
    c.close()

`TcpRingCommunicator.loopback_ring(n)` builds a whole ring on 127.0.0.1 (tests, benchmarks).
Connections are made and authenticated in handshake.py, frames encoded in framing.py, each
call's ring schedule built in ring.py (into a `RingCall`, call.py), the streaming forms wait
and feed in streams.py, and each link's threads run in link.py, reporting back to this class
through the `LinkOwner` methods (`link_lost`, `link_failed`, `peer_left`).

Threads: each link (next, previous) has one sender thread, sending whole calls strictly in
issue order from a queue, and one receiver thread, reading frames with `recv_into` straight
into the destination tensor's memory. The previous link's receiver relays each all-gather
piece, or adds this rank's rows into each reduce-scatter piece and forwards it, as soon as the
piece lands (a pipelined ring: no store-and-forward, no help from the calling thread). A
received point-to-point tensor is kept until `recv` asks for it, so sends never deadlock.
The streaming forms (`all_gather_stream`, `reduce_scatter_stream`) expose the same pipeline
chunk by chunk, for the engine's tile-based overlap.

Semantics: results are delivered in issue order; inputs must not be modified until their Work
completes (as with torch.distributed's async ops); every `wait()` has a deadline (`timeout`,
else CommTimeout). A peer that closes or resets its connection fails every pending and future
call with `WorkerLost(peer)`, and this rank then shuts its own links, so the failure travels
round the ring at once. A rank that closes with nothing pending says goodbye first (BYE):
its neighbours carry on with calls that need nothing more from it, and fail any that do.
After any CommError the ring is unusable: close it and form a new one.
Socket errors become `WorkerLost` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from torch import Tensor

from edge_worker.comm import handshake
from edge_worker.comm.base import Communicator, GatherStream, ReduceScatterStream, Work
from edge_worker.comm.call import CallStats, CommStats, RingCall, RingWork, resolve
from edge_worker.comm.handshake import Address, Identity
from edge_worker.comm.link import Link
from edge_worker.comm.ring import (
    all_gather_call,
    all_reduce_call,
    bye_call,
    reduce_scatter_call,
    send_call,
)
from edge_worker.comm.streams import RingGatherStream, RingReduceStream
from edge_worker.comm.waits import handing_off
from edge_worker.errors import CommError, WorkerLost

__all__ = ["Address", "CallStats", "CommStats", "TcpRingCommunicator"]

log = logging.getLogger(__name__)


class TcpRingCommunicator(Communicator):
    """Rank `rank` of a TCP ring of `world_size`; listens on (host, port) from construction.
    It is its links' `LinkOwner`.

    `token` is the plan's session token (the same bytes on every rank); `names[i]` names rank
    i in errors (default "rank i"); `timeout` (s) bounds connecting and every `wait()`.
    `stats` (CommStats) counts bytes and waiting time per call.
    """

    def __init__(
        self,
        rank: int,
        world_size: int,
        token: bytes,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout: float = 60.0,
        names: Sequence[str] | None = None,
        tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
        max_tensor_bytes: int = 1 << 30,
    ) -> None:
        """`max_tensor_bytes` bounds a point-to-point tensor a peer may announce (what the
        plan can need), so a forged header cannot make this rank allocate more."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a ring of {world_size}")
        if not token:
            raise ValueError("a ring needs a non-empty session token from the coordinator")
        self.rank, self.world_size, self.timeout = rank, world_size, timeout
        self.names = list(names) if names is not None else [f"rank {i}" for i in range(world_size)]
        self.next_rank, self.prev_rank = (rank + 1) % world_size, (rank - 1) % world_size
        self.stats = CommStats()
        self._token = bytes(token)
        self._tls = tls  # (server, client) contexts: mutual TLS with the home's certificates
        self.max_tensor_bytes = max_tensor_bytes
        self._lock = threading.RLock()
        self._order: deque[_Pending] = deque()  # issued calls not yet delivered, in order
        self._seq = 0
        self._failure: CommError | None = None
        self._closed = False
        self._links: dict[str, Link] = {}
        self._listener = handshake.listen(host, port) if world_size > 1 else None
        self._forming: socket.socket | None = None  # the listener, while connect() runs
        self._aborted = threading.Event()
        self.address: Address = self._listener.getsockname()[:2] if self._listener else (host, port)

    @classmethod
    def loopback_ring(
        cls, world_size: int, *, timeout: float = 60.0, token: bytes | None = None
    ) -> list[TcpRingCommunicator]:
        """A connected ring of `world_size` ranks on 127.0.0.1 (ephemeral ports)."""
        token = token or secrets.token_bytes(32)
        comms = [cls(r, world_size, token, timeout=timeout) for r in range(world_size)]
        with ThreadPoolExecutor(world_size) as pool:
            done = [pool.submit(c.connect, [p.address for p in comms]) for c in comms]
            errors = [e for f in done if (e := f.exception()) is not None]
        if errors:
            for c in comms:
                c.close()
            raise errors[0]
        return comms

    def _identity(self, rank: int) -> Identity:
        return Identity(rank, self.world_size, self._token, self.names[rank])

    def connect(self, peers: Sequence[Address]) -> None:
        """Connect to rank+1 and accept rank-1 (`peers[i]` is rank i's address), or raise.

        CommTimeout if a neighbour does not appear within `timeout`; CommError if the next
        rank refuses this rank's token or answers as someone else.
        """
        if len(peers) != self.world_size:
            raise ValueError(f"{len(peers)} peer addresses for a ring of {self.world_size}")
        if self._links or self._closed:
            raise RuntimeError("connect() may be called once, before close()")
        if self._listener is None:
            return
        me, deadline = self._identity(self.rank), time.monotonic() + self.timeout
        listener, self._listener = self._listener, None
        self._forming = listener
        pool = ThreadPoolExecutor(1, thread_name_prefix=f"ring-r{self.rank}-accept")
        server_ctx, client_ctx = self._tls if self._tls else (None, None)
        accepted = pool.submit(
            handshake.accept, listener, me, self._identity(self.prev_rank), deadline, server_ctx
        )
        nxt: socket.socket | None = None
        try:
            nxt = handshake.dial(
                peers[self.next_rank],
                me,
                self._identity(self.next_rank),
                deadline,
                client_ctx,
                stop=self._aborted,
            )
            prv = accepted.result()
        except BaseException as exc:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the acceptor
            if nxt is not None:
                nxt.close()
            with contextlib.suppress(BaseException):
                accepted.result(2.0).close()
            if self._aborted.is_set():
                raise CommError(f"{me.name}'s ring was called off before it formed") from exc
            raise
        finally:
            self._forming = None
            listener.close()
            pool.shutdown(wait=False)
        self._links = {
            role: Link(
                self,
                sock,
                peer,
                self.names[peer],
                f"ring-r{self.rank}-{role}",
                self.max_tensor_bytes,
            )
            for role, sock, peer in (("next", nxt, self.next_rank), ("prev", prv, self.prev_rank))
        }
        for link in self._links.values():
            link.start()

    # ----- calls: build the ring schedule, hand it to the link threads ---------------------

    def _all_gather(self, x: Tensor, sizes: list[int], dim: int) -> Work:
        return self._start(all_gather_call(_cpu(x), sizes, dim, self.rank, self.world_size))

    def _reduce_scatter(self, x: Tensor, sizes: list[int], dim: int) -> Work:
        return self._start(reduce_scatter_call(_cpu(x), sizes, dim, self.rank, self.world_size))

    def _all_reduce(self, x: Tensor) -> Work:
        return self._start(all_reduce_call(_cpu(x), self.rank, self.world_size))

    def all_gather_stream(self, x: Tensor, sizes: list[int], dim: int) -> GatherStream:
        """Chunks usable as each lands: `part(c)` for c in `ring_order(rank, n)`."""
        if self.world_size == 1:
            return super().all_gather_stream(x, sizes, dim)
        self._check_sizes(sizes)
        if x.shape[dim] != sizes[self.rank]:
            raise ValueError(f"rank {self.rank} holds {x.shape[dim]} rows, not {sizes[self.rank]}")
        call = all_gather_call(_cpu(x), sizes, dim, self.rank, self.world_size, stream=True)
        work = self._start(call)
        return RingGatherStream(call, work, x, sizes, dim, self.rank, self.timeout)

    def reduce_scatter_stream(self, sizes: list[int], dim: int) -> ReduceScatterStream:
        """Partials fed in `reduce_order(rank, n)` travel as soon as each is added."""
        if self.world_size == 1:
            return super().reduce_scatter_stream(sizes, dim)
        self._check_sizes(sizes)
        return RingReduceStream(self._start, sizes, dim, self.rank, self.world_size)

    def send_async(self, x: Tensor, dst: int) -> Work:
        link = self._link(dst, "to")
        return self._start(send_call(_cpu(x)), link)

    def recv_async(self, src: int) -> Work:
        link = self._link(src, "from")
        inner, stats = Future[Tensor](), CallStats("recv")
        with self._lock:
            work = self._issue(inner, stats, None)
            gone = self._failure is None and not link.take(inner, stats)
        if gone:
            self._fail(WorkerLost(self.names[src], "it left the ring without sending this"))
        return work

    def _link(self, peer: int, way: str) -> Link:
        if peer == self.rank or peer not in (self.next_rank, self.prev_rank):
            raise ValueError(
                f"rank {self.rank} can exchange tensors only with its ring neighbours "
                f"{self.next_rank} (next) and {self.prev_rank} (previous), not {way} rank {peer}"
            )
        self._check_connected()
        # With two ranks both neighbours are the same rank: send on "next", receive on "prev".
        if way == "to":
            return self._links["next" if peer == self.next_rank else "prev"]
        return self._links["prev" if peer == self.prev_rank else "next"]

    def _check_connected(self) -> None:
        if not self._links:
            raise self._failure or RuntimeError(f"{self.names[self.rank]} is not connected yet")

    def _start(self, call: RingCall, p2p_link: Link | None = None) -> Work:
        handing_off()  # its bytes leave now: a stretched device has computed them by then
        self._check_connected()
        send_link = p2p_link or self._links["next"]
        recv_link = self._links["prev"] if call.expected else None
        with self._lock:
            work = self._issue(call.future, call.stats, call)
            gone = next((k for k in (send_link, recv_link) if k is not None and k.left), None)
            if self._failure is None and gone is None:
                if p2p_link is None:  # a collective: to next, from previous, numbered ring-wide
                    call.seq, self._seq = self._seq, self._seq + 1
                else:
                    call.seq, p2p_link.sent = p2p_link.sent, p2p_link.sent + 1
                if call.n_out:
                    send_link.calls.put(call)
                else:
                    call.part_done()
                if recv_link is not None:
                    recv_link.collectives.put(call)
                else:
                    call.part_done()
        if gone is not None:
            self._fail(WorkerLost(self.names[gone.peer], "it has left the ring"))
        return work

    # ----- issue order, completion, failure ------------------------------------------------

    def _issue(self, inner: Future[Tensor], stats: CallStats, call: RingCall | None) -> Work:
        public = Future[Tensor]()
        with self._lock:
            self._order.append(_Pending(inner, public, stats, call))
            if self._failure is not None:
                resolve(inner, error=self._failure)
        inner.add_done_callback(self._deliver)
        return RingWork(public, stats, self.timeout, self.names[self.rank], self._add_wait)

    def _deliver(self, _: object = None) -> None:
        """Hand finished calls' outcomes to their callers strictly in issue order."""
        with self._lock:
            while self._order and self._order[0].inner.done():
                p = self._order.popleft()
                error = p.inner.exception()
                if error is not None:
                    p.public.set_exception(error)
                    continue
                p.stats.elapsed_s = time.monotonic() - p.started
                s = self.stats
                s.calls, s.bytes_sent = s.calls + 1, s.bytes_sent + p.stats.bytes_sent
                s.bytes_received += p.stats.bytes_received
                s.recent.append(p.stats)
                p.public.set_result(p.inner.result())

    def _add_wait(self, stats: CallStats, seconds: float) -> None:
        with self._lock:
            stats.wait_s += seconds
            self.stats.wait_s += seconds

    # ----- LinkOwner: events reported by the link threads ---------------------------------

    def link_lost(self, link: Link, exc: OSError | EOFError) -> None:
        """`link`'s connection broke: fail the ring with `WorkerLost` (socket errors become
        WorkerLost here and nowhere else)."""
        try:
            raise WorkerLost(
                link.peer_name, f"connection to {self.names[self.rank]} closed ({exc!r})"
            ) from exc
        except WorkerLost as lost:
            self._fail(lost)

    def link_failed(self, link: Link, error: CommError) -> None:
        """`link` broke the protocol or one of its threads failed: fail the ring."""
        self._fail(error)

    def peer_left(self, link: Link, busy: bool) -> None:
        """`link`'s peer said goodbye: fine unless a call still expects frames from it."""
        with self._lock:
            link.left = True
            busy = busy or not link.collectives.empty() or link.has_waiters()
        if busy:
            self._fail(WorkerLost(self.names[link.peer], "it left the ring during a call"))
        else:
            log.info("%s: %s left the ring", self.names[self.rank], self.names[link.peer])

    def _fail(self, error: CommError) -> None:
        """Fail every pending and future call with `error` and shut the links (fail-stop)."""
        with self._lock:
            if self._failure is not None:
                return
            self._failure = error
            pending = list(self._order)
        level = logging.DEBUG if self._closed else logging.WARNING if pending else logging.INFO
        log.log(level, "%s: %s (%d calls pending)", self.names[self.rank], error, len(pending))
        for link in self._links.values():
            link.shutdown()
        for p in pending:
            resolve(p.inner, error=error)
            if p.call is not None:
                p.call.abort()  # release link threads and stream readers waiting on it

    def abort(self) -> None:
        """Call off a `connect()` running on another thread: it raises CommError at once
        rather than wait out its deadline for a peer that may never come (its plan was
        released). Safe from any thread, at any time; `close()` still frees the ring."""
        self._aborted.set()
        if (listener := self._forming) is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the acceptor

    def close(self) -> None:
        """Say goodbye if idle (else the neighbours see WorkerLost), fail pending calls, shut
        both links and join their threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle = self._failure is None and not self._order
        if idle:  # say goodbye, so the neighbours can tell a finished rank from a crashed one
            byes = [self._start(bye_call(), k) for k in self._links.values() if not k.left]
            for bye in byes:
                with contextlib.suppress(CommError):
                    bye.wait(1.0)
        self._fail(CommError(f"{self.names[self.rank]}'s ring communicator is closed"))
        for link in self._links.values():
            link.join()
        if self._listener is not None:
            self._listener.close()


def _cpu(x: Tensor) -> Tensor:
    if x.device.type != "cpu":
        raise ValueError(f"the TCP ring carries CPU tensors; got one on {x.device}")
    return x


@dataclass
class _Pending:
    inner: Future[Tensor]  # completed by the link threads, in any order
    public: Future[Tensor]  # completed by `_deliver`, in issue order
    stats: CallStats
    call: RingCall | None
    started: float = field(default_factory=time.monotonic)
