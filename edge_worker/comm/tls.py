"""TLS for the ring: mutual TLS 1.3 between devices of the home, and the peer-name check.

    server_ctx, client_ctx = credentials.ring_contexts()      # service/credentials.py
    sock = wrap(sock, client_ctx, server_side=False, peer_name="kitchen-pi")   # dialling
    sock = wrap(conn, server_ctx, server_side=True, peer_name="attic-pi")      # accepting

Contract:
- `ctx` None: the socket comes back unchanged (in-process tests, an unsecured ring).
- Otherwise the TLS handshake runs now, bounded by the socket's timeout. Both sides present a
  certificate from the home CA and require one from the peer; both check that the peer's
  certificate CN is `peer_name` (the client also through `server_hostname`, i.e. the SAN).
  On any failure the socket is closed and `ssl.SSLError` (an OSError) is raised:
  `ssl.SSLCertVerificationError` for a bad or missing certificate or a wrong name. A server
  given `peer_name=None` accepts any device of the home; a client must name its peer.
- In TLS 1.3 the client finishes its handshake before the server has checked the client's
  certificate: a refused client learns it on its first read (SSLError or end of stream).
- Revocation is not checked here: the gateway refuses revoked devices, leaves them out of plans
  and closes their connections; a ring peer checks the CA signature and the plan's name.
- Once both checks pass, the two ends agree on a pair of keys over the TLS session and carry
  the ring's bytes in AES-GCM records under them (sealed.py): the result is a `SealedSocket`.
  TLS records through Python's ssl cost the ring 3.0 ms of CPU per MB against 1.2 on a plain
  socket; sealed records cost about what a plain socket does (bench/RESULTS.md).
- The result may be used by one sending and one receiving thread at once, as the ring's links
  do. An `ssl.SSLSocket` may not: OpenSSL forbids concurrent SSL_read/SSL_write on one
  connection. `TlsSocket`, which carries the handshake and the key agreement, runs TLS on
  memory buffers under a lock and does the network I/O outside it. Both offer
  send/sendall/recv/recv_into; other data methods raise rather than bypass the encryption.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from edge_worker.comm import sealed
from edge_worker.comm.sealed import SealedSocket

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

log = logging.getLogger(__name__)

RECV_BYTES = 256 * 1024  # ciphertext read from the network at a time
SEND_BYTES = 256 * 1024  # plaintext encrypted and sent at a time (bounds the buffer)


def server_context(cert_path: Path, key_path: Path, ca_pem: bytes) -> ssl.SSLContext:
    """Accepting side: presents this device's certificate, requires one from the home CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.num_tickets = 0  # no resumption: every connection shows its certificate afresh
    return _configure(ctx, cert_path, key_path, ca_pem)


def client_context(cert_path: Path, key_path: Path, ca_pem: bytes) -> ssl.SSLContext:
    """Dialling side: presents this device's certificate, trusts only the home CA, checks the
    server's name."""
    return _configure(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert_path, key_path, ca_pem)


def _configure(ctx: ssl.SSLContext, cert: Path, key: Path, ca_pem: bytes) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.load_cert_chain(cert, key)
    return ctx


def wrap(
    sock: socket.socket, ctx: ssl.SSLContext | None, *, server_side: bool, peer_name: str | None
) -> socket.socket:
    """`sock` secured by `ctx` after a completed handshake with the device `peer_name`."""
    if ctx is None:
        return sock
    if not server_side and peer_name is None:
        raise ValueError("a TLS client must name the peer it expects")
    tls = TlsSocket(sock, ctx, server_side=server_side, peer_name=peer_name)
    try:
        tls.handshake()
        check_peer_name(tls.getpeercert(), peer_name)
        return _seal(tls, server_side)
    except BaseException:
        tls.close()
        raise


def _seal(tls: TlsSocket, server_side: bool) -> SealedSocket:
    """Agree on the connection's record keys inside TLS and switch to sealed records (the
    three steps of sealed.py's docstring)."""
    mine = sealed.new_random()
    if server_side:
        theirs = _key_share(tls)
        tls.sendall(mine)
        client, server = theirs, mine
    else:
        tls.sendall(mine)
        theirs = _key_share(tls)
        client, server = mine, theirs
    if tls.buffered():
        raise ssl.SSLError("the peer sent more than its key share inside TLS")
    to_server, to_client = sealed.direction_keys(client, server)
    send_key, recv_key = (to_client, to_server) if server_side else (to_server, to_client)
    version, cipher, timeout = tls.version(), tls.cipher(), tls.gettimeout()
    out = SealedSocket(
        tls.detach(), send_key, recv_key, tls_version=version, tls_cipher=cipher, timeout=timeout
    )
    try:
        if server_side:
            out.expect_empty_record()  # the client switched: nothing of it is left in TLS
        else:
            out.sendall(b"")
    except BaseException:
        out.close()
        raise
    return out


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Handshake-sized reads (hellos, key shares); payloads go straight into tensors (link.py).
    EOFError if the peer closes first."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("connection closed")
        got += k
    return bytes(buf)


def _key_share(tls: TlsSocket) -> bytes:
    try:
        return recv_exactly(tls, sealed.RANDOM_BYTES)
    except EOFError:
        raise ssl.SSLEOFError("the peer closed the connection during the key agreement") from None


def check_peer_name(cert: dict[str, Any] | None, peer_name: str | None) -> None:
    """Raise `ssl.SSLCertVerificationError` unless `cert` (as `getpeercert()` returns it) has
    the common name `peer_name`; None accepts any verified certificate."""
    if not cert:
        raise ssl.SSLCertVerificationError("the peer presented no certificate")
    names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    if peer_name is not None and names != [peer_name]:
        raise ssl.SSLCertVerificationError(
            f"the peer is {', '.join(names) or 'unnamed'}, not {peer_name} as the plan says"
        )


class TlsSocket(socket.socket):
    """A connected socket carrying TLS, safe for one sender and one receiver thread at once.

    `_tls_lock` guards the SSL object (never held during network I/O); `_send_lock` keeps
    encrypted records in the order they were made while they are sent.
    """

    def __init__(
        self, sock: socket.socket, ctx: ssl.SSLContext, *, server_side: bool, peer_name: str | None
    ) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.fileno())
        self.settimeout(sock.gettimeout())
        sock.detach()  # this object owns the descriptor now
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hostname = None if server_side else peer_name
        self._tls = ctx.wrap_bio(self._incoming, self._outgoing, server_side, hostname)
        self._tls_lock, self._send_lock = threading.Lock(), threading.Lock()
        self._raw = bytearray(RECV_BYTES)

    def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    self._flush()  # the alert tells the peer why
                raise
            self._flush()
            if not self._fill():
                raise ssl.SSLEOFError("the peer closed the connection during the handshake")
        self._flush()

    def buffered(self) -> int:
        """Bytes received but not yet read: TLS plaintext, and ciphertext not yet decrypted."""
        with self._tls_lock:
            return self._tls.pending() + self._incoming.pending

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._tls.getpeercert(binary_form)

    def cipher(self) -> tuple[str, str, int] | None:
        return self._tls.cipher()

    def version(self) -> str | None:
        return self._tls.version()

    def sendall(self, data: ReadableBuffer, flags: int = 0, /) -> None:
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        with memoryview(data) as view, view.cast("B") as data_bytes, self._send_lock:
            for start in range(0, len(data_bytes), SEND_BYTES):
                with self._tls_lock:
                    self._tls.write(data_bytes[start : start + SEND_BYTES])
                    records = self._outgoing.read()
                super().sendall(records)

    def send(self, data: ReadableBuffer, flags: int = 0, /) -> int:
        self.sendall(data, flags)
        return memoryview(data).nbytes

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0, /) -> int:
        """Up to `nbytes` (default: the buffer's size) decrypted bytes, as many as have
        arrived (waiting only when none have); 0 at end of stream."""
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        with memoryview(buffer) as view, view.cast("B") as out:
            n = nbytes or len(out)
            if n > len(out):
                raise ValueError(f"buffer of {len(out)} bytes is too small for {n}")
            while n:
                got, ended = self._decrypt(out, n)
                if got or ended or not self._fill():
                    return got
            return 0

    def _decrypt(self, out: memoryview, n: int) -> tuple[int, bool]:
        """(bytes decrypted into `out[:n]` from ciphertext already received, end of stream)."""
        got, ended = 0, False
        with self._tls_lock:
            while got < n:  # one TLS record (<= 16 KiB) per read
                try:
                    k: int = self._tls.read(n - got, out[got:])  # type: ignore[assignment]
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    ended = True
                    break
                got += k
            pending = self._outgoing.pending
        if pending and self._send_lock.acquire(blocking=False):
            try:  # e.g. an alert; if a sender is busy, its next send carries it
                self._flush()
            finally:
                self._send_lock.release()
        return got, ended

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        buf = bytearray(bufsize)
        return bytes(buf[: self.recv_into(buf, bufsize, flags)])

    def _fill(self) -> bool:
        """Move ciphertext from the network into the TLS buffer; False at end of stream."""
        k = super().recv_into(self._raw)
        if k:
            with self._tls_lock:
                self._incoming.write(memoryview(self._raw)[:k])
        return k > 0

    def _flush(self) -> None:
        with self._tls_lock:
            records = self._outgoing.read()
        if records:
            super().sendall(records)

    def _plaintext(self, *_: object, **__: object) -> NoReturn:
        raise OSError("this call would bypass TLS; use send/sendall/recv/recv_into")

    sendto = sendmsg = sendfile = recvfrom = recvfrom_into = _plaintext
    recvmsg = recvmsg_into = dup = _plaintext
