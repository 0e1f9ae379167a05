"""The worker's credentials and ring TLS: pairing files, mutual TLS between two devices over
loopback, the sealed records that carry the ring's bytes after it (and their refusal of
tampered, replayed or cut-short records), and refusal of the wrong device, another home's
device, or a device without a certificate."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from assistant.trust.ca import HomeCA
from edge_worker.comm import tls
from edge_worker.comm.sealed import RECORD_BYTES, SealedSocket, direction_keys
from edge_worker.service.credentials import Credentials

TIMEOUT_S = 5.0


def pair(ca: HomeCA, directory: Path, name: str) -> Credentials:
    pending, csr_pem = Credentials.new_request(directory, name)
    cert_pem, _ = ca.issue_device_cert(csr_pem, name)
    return pending.save(cert_pem, ca.cert_pem, gateway="wss://127.0.0.1:8765")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> HomeCA:
    return HomeCA.load_or_create(tmp_path_factory.mktemp("home") / "ca")


@pytest.fixture(scope="module")
def kitchen(ca: HomeCA, tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return pair(ca, tmp_path_factory.mktemp("kitchen"), "kitchen-pi")


@pytest.fixture(scope="module")
def attic(ca: HomeCA, tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return pair(ca, tmp_path_factory.mktemp("attic"), "attic-pi")


def connect(
    server_ctx: ssl.SSLContext | None,
    server_expects: str | None,
    client_ctx: ssl.SSLContext | None,
    client_expects: str,
) -> tuple[socket.socket | Exception, socket.socket | Exception]:
    """(accepted, dialled): each a wrapped socket or the exception `tls.wrap` raised."""
    with socket.create_server(("127.0.0.1", 0)) as listener, ThreadPoolExecutor(1) as pool:
        listener.settimeout(TIMEOUT_S)

        def accept() -> socket.socket:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT_S)
            return tls.wrap(conn, server_ctx, server_side=True, peer_name=server_expects)

        accepted = pool.submit(accept)
        raw = socket.create_connection(listener.getsockname(), timeout=TIMEOUT_S)
        dialled: socket.socket | Exception
        try:
            dialled = tls.wrap(raw, client_ctx, server_side=False, peer_name=client_expects)
        except OSError as exc:
            dialled = exc
        try:
            return accepted.result(TIMEOUT_S), dialled
        except OSError as exc:
            return exc, dialled


def read_exactly(sock: socket.socket, n: int) -> bytes:
    buf, got = bytearray(n), 0
    while got < n:
        k = sock.recv_into(memoryview(buf)[got:], n - got)
        if k == 0:
            raise EOFError(f"closed after {got} of {n} bytes")
        got += k
    return bytes(buf)


def test_a_device_has_no_credentials_before_pairing(tmp_path: Path) -> None:
    assert Credentials.load(tmp_path) is None
    Credentials.new_request(tmp_path, "kitchen-pi")
    assert Credentials.load(tmp_path) is None


def test_saved_credentials_load_identical_and_private(ca: HomeCA, tmp_path: Path) -> None:
    saved = pair(ca, tmp_path / "creds", "kitchen-pi")

    loaded = Credentials.load(tmp_path / "creds")

    assert loaded == saved
    assert (loaded.name, loaded.ca_pem, loaded.gateway) == (
        "kitchen-pi",
        ca.cert_pem,
        "wss://127.0.0.1:8765",
    )
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "creds").iterdir()}
    assert modes == dict.fromkeys(["key.pem", "cert.pem", "ca.pem", "gateway.json"], 0o600)


def test_a_certificate_for_another_key_is_not_saved(ca: HomeCA, tmp_path: Path) -> None:
    pending, _ = Credentials.new_request(tmp_path / "a", "kitchen-pi")
    _, other_csr = Credentials.new_request(tmp_path / "b", "kitchen-pi")
    cert_pem, _ = ca.issue_device_cert(other_csr, "kitchen-pi")

    with pytest.raises(ValueError, match="another key"):
        pending.save(cert_pem, ca.cert_pem, "wss://127.0.0.1:8765")
    assert Credentials.load(tmp_path / "a") is None


def test_a_certificate_from_another_ca_is_not_saved(ca: HomeCA, tmp_path: Path) -> None:
    other = HomeCA.load_or_create(tmp_path / "other-ca")
    pending, csr_pem = Credentials.new_request(tmp_path / "a", "kitchen-pi")
    cert_pem, _ = other.issue_device_cert(csr_pem, "kitchen-pi")

    with pytest.raises(ValueError, match="not signed by the home CA"):
        pending.save(cert_pem, ca.cert_pem, "wss://127.0.0.1:8765")


def test_asking_again_keeps_working_credentials_until_the_new_ones_arrive(
    ca: HomeCA, tmp_path: Path
) -> None:
    first = pair(ca, tmp_path, "kitchen-pi")

    Credentials.new_request(tmp_path, "kitchen-pi")

    assert Credentials.load(tmp_path) == first


def test_without_a_context_the_socket_is_unchanged() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert tls.wrap(a, None, server_side=True, peer_name="kitchen-pi") is a


def test_two_devices_move_bytes_both_ways_at_once(kitchen: Credentials, attic: Credentials) -> None:
    kitchen_server, _ = kitchen.ring_contexts()
    _, attic_client = attic.ring_contexts()
    accepted, dialled = connect(kitchen_server, "attic-pi", attic_client, "kitchen-pi")
    assert isinstance(accepted, SealedSocket) and isinstance(dialled, SealedSocket)
    down, up = os.urandom(3_000_000), os.urandom(2_000_000)
    received: dict[str, bytes] = {}

    def read(name: str, sock: socket.socket, n: int) -> None:
        received[name] = read_exactly(sock, n)

    with accepted, dialled:
        threads = [
            threading.Thread(target=accepted.sendall, args=(down,)),
            threading.Thread(target=dialled.sendall, args=(up,)),
            threading.Thread(target=read, args=("down", dialled, len(down))),
            threading.Thread(target=read, args=("up", accepted, len(up))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S)

    assert received == {"down": down, "up": up}
    assert accepted.version() == dialled.version() == "TLSv1.3"


def test_a_server_refuses_a_device_with_another_name(
    kitchen: Credentials, attic: Credentials
) -> None:
    kitchen_server, _ = kitchen.ring_contexts()
    _, attic_client = attic.ring_contexts()

    accepted, dialled = connect(kitchen_server, "hall-pi", attic_client, "kitchen-pi")

    assert isinstance(accepted, ssl.SSLCertVerificationError)
    assert "attic-pi, not hall-pi" in str(accepted)
    # TLS 1.3: the client finishes first, and learns of the refusal in the key agreement
    assert isinstance(dialled, ssl.SSLError)


def test_a_client_refuses_a_server_with_another_name(
    kitchen: Credentials, attic: Credentials
) -> None:
    kitchen_server, _ = kitchen.ring_contexts()
    _, attic_client = attic.ring_contexts()

    accepted, dialled = connect(kitchen_server, "attic-pi", attic_client, "hall-pi")

    assert isinstance(dialled, ssl.SSLCertVerificationError)
    assert isinstance(accepted, ssl.SSLError)


def test_a_server_refuses_a_device_of_another_home(kitchen: Credentials, tmp_path: Path) -> None:
    other = HomeCA.load_or_create(tmp_path / "ca")
    impostor = pair(other, tmp_path / "impostor", "attic-pi")
    kitchen_server, _ = kitchen.ring_contexts()
    _, impostor_client = impostor.ring_contexts()
    impostor_client.load_verify_locations(cadata=kitchen.ca_pem.decode())  # trusts us

    accepted, _ = connect(kitchen_server, "attic-pi", impostor_client, "kitchen-pi")

    assert isinstance(accepted, ssl.SSLCertVerificationError)


def test_a_server_refuses_a_peer_without_a_certificate(kitchen: Credentials) -> None:
    kitchen_server, _ = kitchen.ring_contexts()
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cadata=kitchen.ca_pem.decode())

    accepted, dialled = connect(kitchen_server, None, anonymous, "kitchen-pi")

    assert isinstance(accepted, ssl.SSLError)
    assert "certificate" in str(accepted).lower()
    if isinstance(dialled, socket.socket):
        with dialled, pytest.raises(ssl.SSLError):
            dialled.recv(1)


def test_a_closed_or_shut_down_connection_reads_as_end_of_stream(
    kitchen: Credentials, attic: Credentials
) -> None:
    kitchen_server, _ = kitchen.ring_contexts()
    _, attic_client = attic.ring_contexts()
    accepted, dialled = connect(kitchen_server, "attic-pi", attic_client, "kitchen-pi")
    assert isinstance(accepted, socket.socket) and isinstance(dialled, socket.socket)
    dialled.settimeout(None)
    reader = ThreadPoolExecutor(1)
    blocked = reader.submit(dialled.recv, 1)

    dialled.shutdown(socket.SHUT_RDWR)  # what a ring link does to wake its threads

    assert blocked.result(TIMEOUT_S) == b""
    reader.shutdown()
    accepted.settimeout(TIMEOUT_S)
    assert accepted.recv(1) == b""
    accepted.close()
    dialled.close()


def test_calls_that_would_bypass_tls_are_refused(kitchen: Credentials, attic: Credentials) -> None:
    kitchen_server, _ = kitchen.ring_contexts()
    _, attic_client = attic.ring_contexts()
    accepted, dialled = connect(kitchen_server, "attic-pi", attic_client, "kitchen-pi")
    assert isinstance(accepted, socket.socket) and isinstance(dialled, socket.socket)

    with accepted, dialled, pytest.raises(OSError, match="bypass the seal"):
        dialled.sendmsg([b"plaintext"])


def sealed_pair() -> tuple[SealedSocket, SealedSocket, socket.socket]:
    """(writer, reader) sealed ends of one connection, and a raw tap: bytes the writer sends
    go to the tap first, which the test forwards (or alters) to the reader."""
    a, tap = socket.socketpair()
    tap_out, b = socket.socketpair()
    to_b, to_a = direction_keys(os.urandom(32), os.urandom(32))
    writer = SealedSocket(a.detach(), to_b, to_a, tls_version=None, tls_cipher=None, timeout=5)
    reader = SealedSocket(b.detach(), to_a, to_b, tls_version=None, tls_cipher=None, timeout=5)
    tap.settimeout(5)
    return writer, reader, _Forward(tap, tap_out)


class _Forward:
    def __init__(self, tap: socket.socket, out: socket.socket) -> None:
        self.tap, self.out = tap, out

    def take(self, n: int) -> bytearray:
        return bytearray(read_exactly(self.tap, n))

    def give(self, data: bytes) -> None:
        self.out.sendall(data)

    def close(self) -> None:
        self.tap.close()
        self.out.close()


def test_sealed_records_carry_any_sizes_into_any_buffers() -> None:
    writer, reader, wire = sealed_pair()
    data = os.urandom(3 * RECORD_BYTES + 1234)
    n_records = 1 + 4  # 10 bytes, then 3 full records and a partial one
    forward = threading.Thread(
        target=lambda: wire.give(bytes(wire.take(len(data) + n_records * (4 + 16))))
    )
    forward.start()
    writer.sendall(data[:10])
    writer.sendall(data[10:])
    got = bytearray()
    for want in (3, 7, 100_000, RECORD_BYTES, len(data)):  # larger and smaller than records
        buf = bytearray(want)
        got += buf[: reader.recv_into(buf)]
    while len(got) < len(data):
        got += reader.recv(len(data))
    forward.join(TIMEOUT_S)
    assert bytes(got) == data
    writer.close(), reader.close(), wire.close()


@pytest.mark.parametrize("attack", ["tamper", "replay", "cut"])
def test_a_tampered_replayed_or_cut_record_ends_the_connection(attack: str) -> None:
    writer, reader, wire = sealed_pair()
    writer.sendall(b"layer 1 activations")
    first = wire.take(4 + 19 + 16)
    writer.sendall(b"layer 2 activations")
    second = wire.take(4 + 19 + 16)
    if attack == "tamper":
        second[10] ^= 1
        wire.give(bytes(first + second))
    elif attack == "replay":
        wire.give(bytes(first + first))
    else:
        wire.give(bytes(first + second[:20]))
        wire.tap.close()
        wire.out.shutdown(socket.SHUT_WR)
    assert reader.recv(100) == b"layer 1 activations"
    with pytest.raises(ssl.SSLError):
        reader.recv(100)
    writer.close(), reader.close(), wire.close()


def test_the_two_directions_have_their_own_keys() -> None:
    to_server, to_client = direction_keys(b"c" * 32, b"s" * 32)
    again = direction_keys(b"c" * 32, b"s" * 32)
    other = direction_keys(b"c" * 32, b"t" * 32)
    assert to_server != to_client and (to_server, to_client) == again
    assert other[0] != to_server and other[1] != to_client
