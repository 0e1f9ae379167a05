"""Ring connections: every socket is created, tuned and authenticated here, and only here.

    listen(host, port)                       a listening socket (port 0: the OS picks one)
    dial(addr, me, peer, deadline, stop)     connect to the next rank, send our hello, check
                                             its answer; retries until it is listening (or
                                             `stop` is set)
    accept(listener, me, peer, deadline)     wait for the previous rank; refuse (close) any
                                             connection whose hello has the wrong token, rank
                                             or world size, and keep waiting for the right one;
                                             connections are greeted at once, each within
                                             HELLO_TIMEOUT_S, so silent ones delay nobody

`me` and `peer` are `Identity`s: the rank, the world size, the plan's session token (checked
with `hmac.compare_digest`) and a name for messages. Errors: `CommTimeout` when the deadline
passes, `CommError` when the next rank refuses our hello or answers as someone else. TLS will
wrap sockets in `secure()`, the single point both ends pass through before the hello.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import math
import select
import socket
import ssl
import threading
import time
from typing import NamedTuple

from edge_worker.comm import framing as F
from edge_worker.comm import tls
from edge_worker.comm.tls import recv_exactly
from edge_worker.errors import CommError, CommTimeout

log = logging.getLogger(__name__)

Address = tuple[str, int]
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
HELLO_TIMEOUT_S = 5.0  # an accepted connection must finish TLS and its hello this fast
MAX_GREETINGS = 16  # connections greeted at once by `accept`; a newer one ends the oldest


class Identity(NamedTuple):
    rank: int
    world_size: int
    token: bytes
    name: str

    def hello(self) -> bytes:
        return F.encode_hello(self.rank, self.world_size, self.token)

    def matches(self, hello: F.Hello, token: bytes) -> bool:
        same = hmac.compare_digest(token, self.token)
        return same and (hello.rank, hello.world_size) == (self.rank, self.world_size)


def new_socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    tune(sock)
    return sock


def tune(sock: socket.socket) -> None:
    """Large buffers (set before connecting, for window scaling) and no Nagle delay."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def secure(
    sock: socket.socket, ctx: ssl.SSLContext | None, *, server_side: bool, peer_name: str | None
) -> socket.socket:
    """Mutual TLS with the home's certificates when the ring has a context (see tls.py), else
    the plain socket (in-process tests, the benchmark's private rings)."""
    return tls.wrap(sock, ctx, server_side=server_side, peer_name=peer_name)


def listen(host: str, port: int) -> socket.socket:
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = new_socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    sock.listen(8)
    return sock


def dial(
    addr: Address,
    me: Identity,
    peer: Identity,
    deadline: float,
    ctx: ssl.SSLContext | None = None,
    stop: threading.Event | None = None,
) -> socket.socket:
    where = f"{peer.name} at {addr[0]}:{addr[1]}"
    family, _, _, _, sockaddr = socket.getaddrinfo(*addr, type=socket.SOCK_STREAM)[0]
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CommTimeout(f"{me.name} could not reach {where} in time; is it running?")
        if stop is not None and stop.is_set():
            raise CommError(f"{me.name} stopped trying to reach {where}")
        sock = new_socket(family)
        sock.settimeout(remaining)
        try:
            sock.connect(sockaddr)
            break
        except OSError:  # not listening yet: retry until the deadline
            sock.close()
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    try:
        sock = secure(sock, ctx, server_side=False, peer_name=peer.name)
        sock.sendall(me.hello())
        hello = F.decode_hello(recv_exactly(sock, F.HELLO_BYTES))
        token = recv_exactly(sock, hello.token_bytes)
    except TimeoutError as exc:
        sock.close()
        raise CommTimeout(f"{where} did not answer {me.name}'s handshake in time") from exc
    except (OSError, EOFError) as exc:
        sock.close()
        raise CommError(
            f"{where} refused {me.name}'s handshake: the ranks hold different session tokens "
            "or ring positions; give every rank the same plan"
        ) from exc
    except ValueError as exc:
        sock.close()
        raise CommError(f"{where} does not speak the ring protocol: {exc}") from exc
    if not peer.matches(hello, token):
        sock.close()
        raise CommError(
            f"{where} answered as rank {hello.rank} of {hello.world_size} or with another "
            f"token (expected rank {peer.rank} of {peer.world_size}); check the plan"
        )
    sock.settimeout(None)
    return sock


def accept(
    listener: socket.socket,
    me: Identity,
    peer: Identity,
    deadline: float,
    ctx: ssl.SSLContext | None = None,
) -> socket.socket:
    """The connection from `peer`, once its TLS handshake and hello check out.

    Every connection is greeted (TLS, then its hello read and checked) on a thread of its own,
    within `HELLO_TIMEOUT_S` in all, so connections that say nothing, say it a byte at a time
    or say the wrong thing cannot hold up the right one; at most `MAX_GREETINGS` are greeted
    at once (a newer connection ends the oldest greeting). Refused connections are closed
    without an answer. CommTimeout when `deadline` passes first.
    """
    hall = _Hall(me, peer, ctx, deadline)
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            if hall.chosen is not None:
                return hall.chosen
            wait = min(remaining, hall.next_expiry() - time.monotonic())
            ready, _, _ = select.select([listener, hall.bell], [], [], max(0.0, wait))
            hall.expire()
            if hall.bell in ready:
                hall.bell.recv(4096)
            if listener in ready:
                listener.settimeout(remaining)
                try:
                    conn, source = listener.accept()
                except TimeoutError:
                    continue
                hall.greet(conn, source)
        if hall.chosen is not None:
            return hall.chosen
    finally:
        hall.close()
    raise CommTimeout(
        f"{me.name} waited for {peer.name} to connect until its deadline ({hall.refused} "
        "connections refused); is it running with the same plan?"
    )


class _Hall:
    """The connections `accept` is greeting: one thread each, a deadline each, and the first
    one that proves to be `peer` (`chosen`). `bell` wakes the accepting thread."""

    def __init__(
        self, me: Identity, peer: Identity, ctx: ssl.SSLContext | None, deadline: float
    ) -> None:
        self.me, self.peer, self.ctx, self.deadline = me, peer, ctx, deadline
        self.chosen: socket.socket | None = None  # set once, after our hello went out
        self._claimed = False  # a greeting is answering its peer's hello
        self.refused = 0
        self.bell, self._ring = socket.socketpair()
        self._lock = threading.Lock()
        self._open = True
        # A duplicate of each greeted socket (its descriptor outlives TLS wrapping) and the
        # time its greeting must end (inf once ended): shutting the duplicate down ends the
        # greeting's reads and writes.
        self._greeting: dict[socket.socket, float] = {}

    def greet(self, conn: socket.socket, source: Address) -> None:
        tune(conn)
        ends = min(time.monotonic() + HELLO_TIMEOUT_S, self.deadline)
        conn.settimeout(max(0.001, ends - time.monotonic()))
        handle = conn.dup()
        with self._lock:
            live = {h: t for h, t in self._greeting.items() if t != math.inf}
            if len(live) >= MAX_GREETINGS:
                self._end(min(live, key=live.__getitem__))  # the oldest
            self._greeting[handle] = ends
        threading.Thread(
            target=self._greet, args=(conn, source, handle), name="ring-greet", daemon=True
        ).start()

    def _greet(self, conn: socket.socket, source: Address, handle: socket.socket) -> None:
        try:
            conn = secure(conn, self.ctx, server_side=True, peer_name=self.peer.name)
            hello = F.decode_hello(recv_exactly(conn, F.HELLO_BYTES))
            if self.peer.matches(hello, recv_exactly(conn, hello.token_bytes)):
                if self._choose(conn, handle):
                    return
                reason = f"{self.peer.name} is connected already"
            else:
                reason = f"wrong session token, or not rank {self.peer.rank} of "
                reason += str(self.peer.world_size)
        except (OSError, EOFError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
        finally:
            with self._lock:
                self._greeting.pop(handle, None)
            handle.close()
        with self._lock:
            self.refused += 1
        who = f"{source[0]}:{source[1]}"
        log.warning("%s refused a ring connection from %s: %s", self.me.name, who, reason)
        conn.close()

    def _choose(self, conn: socket.socket, handle: socket.socket) -> bool:
        """Answer `conn`'s hello and hand it to `accept`, unless another got there first."""
        with self._lock:
            if self._claimed or not self._open:
                return False
            self._claimed = True
        try:
            conn.sendall(self.me.hello())
            conn.settimeout(None)
        except OSError:
            with self._lock:
                self._claimed = False
            raise
        with self._lock:
            self._greeting.pop(handle, None)  # no longer ours to end
            if not self._open:  # `accept` gave up meanwhile: nobody will take it
                conn.close()
                return True
            self.chosen = conn
        with contextlib.suppress(OSError):
            self._ring.send(b"!")
        return True

    def next_expiry(self) -> float:
        with self._lock:
            return min(self._greeting.values(), default=self.deadline)

    def expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            for handle in [h for h, ends in self._greeting.items() if ends <= now]:
                self._end(handle)

    def close(self) -> None:
        """End every greeting still running (the chosen connection stays open)."""
        with self._lock:
            self._open = False
            for handle in list(self._greeting):
                self._end(handle)
        self.bell.close()
        self._ring.close()

    def _end(self, handle: socket.socket) -> None:
        """(With the lock held.) Its greeting's next read or write fails at once."""
        self._greeting[handle] = math.inf
        with contextlib.suppress(OSError):
            handle.shutdown(socket.SHUT_RDWR)
