"""The ring's bulk channel: AES-256-GCM records under keys agreed inside mutual TLS 1.3.

Why not TLS records themselves: Python's ssl module can only run TLS for two threads at once on
memory buffers (tls.py), which costs three copies and a Python loop per 16 KiB record each way.
The ring measured 1.28 ms of CPU per MB with it against 0.59 on a plain socket and 0.88 with
these records (bench/dataplane-ab-sealed.json), and on a device whose network stack shares its
core that CPU comes out of the compute. Here each record is one AES-GCM call of up to
RECORD_BYTES that releases the GIL, decrypted straight into the caller's buffer (the tensor's
memory) when it fits: one copy each way, as on a plain socket.

How the keys are made (`tls._seal`, called by `tls.wrap` after the certificate and name
checks):

    client -> server, over TLS:  32 random bytes  c
    server -> client, over TLS:  32 random bytes  s        (then the server sends nothing)
    client -> server, sealed:    an empty record           (the server returns once it opens)

Each direction has its own key, HKDF-SHA256(c || s, info "galaxy ring <direction>"), so the
secret is known only to the two authenticated devices of this connection and is new for every
connection. Every record's nonce is its number in its direction (never reused under one key);
its length is authenticated. A record that does not open (tampered, reordered, replayed, cut
short) ends the connection with `ssl.SSLError`, an OSError, which the ring treats as a lost
peer. The empty record of the third step also proves that no TLS bytes are left unread on
either side before the stream changes format (`tls.py` checks its buffers are empty).

A `SealedSocket` may be used by one sending and one receiving thread at once (each direction
has its own lock and buffers), as the ring's links do.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
from typing import TYPE_CHECKING, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

RECORD_BYTES = 256 * 1024  # plaintext per record at most (a ring piece is up to 1 MiB)
RANDOM_BYTES = 32
TAG_BYTES = 16
_HEAD = struct.Struct("!I")  # a record: plaintext length (authenticated), then ciphertext + tag


def direction_keys(client_random: bytes, server_random: bytes) -> tuple[bytes, bytes]:
    """(client-to-server key, server-to-client key) for one connection."""

    def key(direction: bytes) -> bytes:
        hkdf = HKDF(hashes.SHA256(), 32, salt=None, info=b"galaxy ring " + direction)
        return hkdf.derive(client_random + server_random)

    return key(b"client->server"), key(b"server->client")


class SealedSocket(socket.socket):
    """A connected socket whose bytes travel in AES-GCM records (see the module docstring).

    `version()` and `cipher()` report the TLS session the keys were agreed in, for logs.
    """

    def __init__(
        self, fileno: int, send_key: bytes, recv_key: bytes, *, tls_version: str | None,
        tls_cipher: tuple[str, str, int] | None, timeout: float | None,
    ) -> None:  # fmt: skip
        super().__init__(fileno=fileno)
        self.settimeout(timeout)
        self._tls_version, self._tls_cipher = tls_version, tls_cipher
        self._seal, self._open = AESGCM(send_key), AESGCM(recv_key)
        self._send_lock, self._recv_lock = threading.Lock(), threading.Lock()
        self._sent = self._opened = 0  # records per direction: the nonces
        self._out = bytearray(_HEAD.size + RECORD_BYTES + TAG_BYTES)
        self._in = bytearray(RECORD_BYTES + TAG_BYTES)
        self._plain = bytearray(RECORD_BYTES)  # a record larger than the caller asked for
        self._left = memoryview(self._plain)[:0]  # its bytes not yet handed out
        self._head = bytes(_HEAD.size)  # the header of the record being opened (its AAD)

    def version(self) -> str | None:
        return self._tls_version

    def cipher(self) -> tuple[str, str, int] | None:
        return self._tls_cipher

    # ----- sending ------------------------------------------------------------------------

    def sendall(self, data: ReadableBuffer, flags: int = 0, /) -> None:
        if flags:
            raise ValueError("flags are not supported on a sealed socket")
        with memoryview(data) as view, view.cast("B") as plain, self._send_lock:
            for start in range(0, max(len(plain), 1), RECORD_BYTES):
                self._send_record(plain[start : start + RECORD_BYTES])

    def send(self, data: ReadableBuffer, flags: int = 0, /) -> int:
        self.sendall(data, flags)
        return memoryview(data).nbytes

    def _send_record(self, plain: memoryview) -> None:
        n = len(plain)
        out = memoryview(self._out)
        _HEAD.pack_into(out, 0, n)
        head, body = out[: _HEAD.size], out[_HEAD.size : _HEAD.size + n + TAG_BYTES]
        self._seal.encrypt_into(_nonce(self._sent), plain, head, body)
        self._sent += 1
        super().sendall(out[: _HEAD.size + n + TAG_BYTES])

    # ----- receiving ----------------------------------------------------------------------

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0, /) -> int:
        """Up to `nbytes` (default: the buffer's size) plaintext bytes: what is left of the
        last record, else the next record (waiting for it); 0 at the end of the stream."""
        if flags:
            raise ValueError("flags are not supported on a sealed socket")
        with memoryview(buffer) as view, view.cast("B") as out, self._recv_lock:
            n = nbytes or len(out)
            if n > len(out):
                raise ValueError(f"buffer of {len(out)} bytes is too small for {n}")
            while not self._left and n:
                size = self._read_head()
                if size is None:
                    return 0
                if size <= n:  # the common case: straight into the caller's memory
                    self._open_record(size, out[:size])
                    if size:
                        return size
                else:
                    self._open_record(size, memoryview(self._plain)[:size])
                    self._left = memoryview(self._plain)[:size]
            k = min(n, len(self._left))
            out[:k] = self._left[:k]
            self._left = self._left[k:]
            return k

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        buf = bytearray(bufsize)
        return bytes(buf[: self.recv_into(buf, bufsize, flags)])

    def expect_empty_record(self) -> None:
        """Read one record, which must be empty (the key agreement's last step)."""
        with self._recv_lock:
            size = self._read_head()
            if size is None:
                raise ssl.SSLEOFError("the peer closed the connection during the key agreement")
            if size:
                raise ssl.SSLError("the peer's first sealed record was not empty")
            self._open_record(0, memoryview(self._plain)[:0])

    def _read_head(self) -> int | None:
        """The next record's plaintext length; None at a clean end of stream."""
        head = bytearray(_HEAD.size)
        if not self._fill(memoryview(head), clean_eof=True):
            return None
        (size,) = _HEAD.unpack(head)
        if size > RECORD_BYTES:
            raise ssl.SSLError(f"sealed record of {size} bytes exceeds {RECORD_BYTES}")
        self._head = bytes(head)
        return size

    def _open_record(self, size: int, into: memoryview) -> None:
        body = memoryview(self._in)[: size + TAG_BYTES]
        self._fill(body, clean_eof=False)
        try:
            self._open.decrypt_into(_nonce(self._opened), body, self._head, into)
        except InvalidTag:
            raise ssl.SSLError("a sealed record failed authentication") from None
        self._opened += 1

    def _fill(self, view: memoryview, *, clean_eof: bool) -> bool:
        got = 0
        while got < len(view):
            k = super().recv_into(view[got:], len(view) - got)
            if k == 0:
                if clean_eof and got == 0:
                    return False
                raise ssl.SSLEOFError("the connection ended inside a sealed record")
            got += k
        return True

    def _plaintext(self, *_: object, **__: object) -> NoReturn:
        raise OSError("this call would bypass the seal; use send/sendall/recv/recv_into")

    sendto = sendmsg = sendfile = recvfrom = recvfrom_into = _plaintext
    recvmsg = recvmsg_into = dup = _plaintext


def _nonce(count: int) -> bytes:
    return count.to_bytes(12, "big")


def new_random() -> bytes:
    return os.urandom(RANDOM_BYTES)
