"""Ring connections: every socket is created, tuned and authenticated here, and only here.

    listen(host, port)                       a listening socket (port 0: the OS picks one)
    dial(addr, me, peer, deadline)           connect to the next rank, send our hello, check
                                             its answer; retries until it is listening
    accept(listener, me, peer, deadline)     wait for the previous rank; refuse (close) any
                                             connection whose hello has the wrong token, rank
                                             or world size, and keep waiting for the right one

`me` and `peer` are `Identity`s: the rank, the world size, the plan's session token (checked
with `hmac.compare_digest`) and a name for messages. Errors: `CommTimeout` when the deadline
passes, `CommError` when the next rank refuses our hello or answers as someone else. TLS will
wrap sockets in `secure()`, the single point both ends pass through before the hello.
"""

from __future__ import annotations

import hmac
import logging
import socket
import ssl
import time
from typing import NamedTuple

from edge_worker.comm import framing as F
from edge_worker.comm import tls
from edge_worker.errors import CommError, CommTimeout

log = logging.getLogger(__name__)

Address = tuple[str, int]
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
HELLO_TIMEOUT_S = 5.0  # an accepted connection must say hello this fast, or it is dropped


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
) -> socket.socket:
    where = f"{peer.name} at {addr[0]}:{addr[1]}"
    family, _, _, _, sockaddr = socket.getaddrinfo(*addr, type=socket.SOCK_STREAM)[0]
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CommTimeout(f"{me.name} could not reach {where} in time; is it running?")
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
    refused = 0
    while (remaining := deadline - time.monotonic()) > 0:
        listener.settimeout(remaining)
        try:
            conn, source = listener.accept()
        except TimeoutError:
            break
        tune(conn)
        conn.settimeout(min(HELLO_TIMEOUT_S, remaining))
        try:
            conn = secure(conn, ctx, server_side=True, peer_name=peer.name)
            hello = F.decode_hello(recv_exactly(conn, F.HELLO_BYTES))
            if peer.matches(hello, recv_exactly(conn, hello.token_bytes)):
                conn.sendall(me.hello())
                conn.settimeout(None)
                return conn
            reason = f"wrong session token, or not rank {peer.rank} of {peer.world_size}"
        except (OSError, EOFError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
        refused += 1
        log.warning("%s refused a ring connection from %s:%s: %s", me.name, *source[:2], reason)
        conn.close()
    raise CommTimeout(
        f"{me.name} waited for {peer.name} to connect until its deadline ({refused} "
        "connections refused); is it running with the same plan?"
    )


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Handshake-sized reads; payloads go straight into tensors (tcp.py)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("connection closed")
        got += k
    return bytes(buf)
