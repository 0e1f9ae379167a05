"""Exhaustion: idle connections and huge bodies (cases 25-32; conftest.py says how every
case ends).

Exhaustion
 25. idle connections on the ring port         the ring still forms (fixed: they were greeted
                                               one at a time, 5 s each)
 26. idle and half-sent requests on the API port   the API keeps answering
 27. idle connections on the worker port       new TLS handshakes and requests go on
 28. idle connections on the Wyoming port, more than its 16 clients   a new client is served
                                               (fixed: it was told "busy" for ever)
 29-30. a body over the upload limit, declared and chunked   413 before it is read
 31. JSON nested 100 000 deep                  422
 32. an integer of 100 000 digits              422
"""

from __future__ import annotations

import contextlib
import socket

import pytest

from edge_worker.service.credentials import Credentials
from tests.security.conftest import Home
from tests.security.hostile import (
    WyomingLine,
    closed,
    idle,
)

pytestmark = [pytest.mark.slow, pytest.mark.long]

# ----- exhaustion ----------------------------------------------------------------------------


def test_idle_and_half_sent_requests_do_not_stop_the_api(home: Home) -> None:
    silent = idle(home.gw.settings.host, home.gw.settings.port, 200)
    for s in silent[:50]:
        s.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    try:
        home.assert_still_serving()
    finally:
        for s in silent:
            s.close()


def test_idle_connections_do_not_stop_the_worker_endpoint(home: Home, mallory: Credentials) -> None:
    host, port = home.gw.state.coordinator.host, home.gw.state.coordinator.port
    silent = idle(host, port, 100)
    try:
        ctx = mallory.client_context()
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            version = tls.version()  # the TLS handshake completes for a new client
        home.assert_still_serving()
    finally:
        for s in silent:
            s.close()

    assert version == "TLSv1.3"


def test_idle_connections_do_not_lock_out_wyoming_clients(home: Home) -> None:
    server = home.gw.state.extras["wyoming"]
    silent = [WyomingLine(server.host, server.port) for _ in range(20)]  # the server takes 16
    try:
        client = WyomingLine(server.host, server.port)
        client.send({"type": "describe"})
        info = client.read()
        client.close()
        evicted = silent[0].read()  # the longest idle made room
    finally:
        for s in silent:
            s.close()

    assert info is not None and info["type"] == "info"
    assert evicted is not None and evicted["type"] == "error" and evicted["data"]["code"] == "idle"
    home.assert_still_serving()


def test_a_body_over_the_upload_limit_is_refused_before_it_is_read(home: Home) -> None:
    declared = post_raw(home, "/v1/embed", {"Content-Length": str(64 << 20)}, b"x" * 65536)
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    chunked = post_raw(home, "/v1/embed", {"Transfer-Encoding": "chunked"}, chunk * 24)

    assert declared.startswith(b"HTTP/1.1 413") and b"1.0 MB (GALAXY_MAX_UPLOAD_MB)" in declared
    assert chunked.startswith(b"HTTP/1.1 413")
    home.assert_still_serving()


def post_raw(home: Home, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """A request written by hand (the body may be cut short): the answer's first bytes."""
    head = f"POST {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {home.gw.token}\r\n"
    head += "Content-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((home.gw.settings.host, home.gw.settings.port), 30) as s:
        s.sendall(head.encode())
        with contextlib.suppress(OSError):  # the gateway may answer and close mid-body
            s.sendall(body)
        return closed(s, 30)[:400]
