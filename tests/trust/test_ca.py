"""The home CA: made once, issues device and gateway certificates, and its TLS contexts admit
devices of this home only (real handshakes over loopback sockets)."""

from __future__ import annotations

import hashlib
import socket
import ssl
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from assistant.trust.ca import HomeCA, cert_common_name, cert_serial, peer_serial_and_name

TIMEOUT_S = 5.0


def make_csr(name: str = "kitchen-pi") -> tuple[bytes, bytes]:
    """(key PEM, CSR PEM), as a worker makes them."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def device(ca: HomeCA, name: str) -> tuple[bytes, bytes, int]:
    """(cert PEM, key PEM, serial) of a device paired with `ca`."""
    key_pem, csr_pem = make_csr(name)
    cert_pem, serial = ca.issue_device_cert(csr_pem, name)
    return cert_pem, key_pem, serial


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> HomeCA:
    return HomeCA.load_or_create(tmp_path_factory.mktemp("home") / "ca")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> HomeCA:
    return HomeCA.load_or_create(
        tmp_path_factory.mktemp("neighbour") / "ca"
    )  # the default name too


@pytest.fixture(scope="module")
def gateway(ca: HomeCA) -> tuple[bytes, bytes]:
    return ca.issue_server_cert(["127.0.0.1", "localhost"])


def connect(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    server_hostname: str = "127.0.0.1",
) -> tuple[object, object]:
    """One ping/pong over loopback. Returns (server outcome, client outcome): the server's
    (serial, name) of its peer (None if it presented no certificate), the client's b"pong",
    or the exception either side raised."""
    with socket.create_server(("127.0.0.1", 0)) as listener, ThreadPoolExecutor(1) as pool:
        listener.settimeout(TIMEOUT_S)

        def serve() -> object:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT_S)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                try:
                    peer: object = peer_serial_and_name(tls)
                except ValueError:  # the peer presented no certificate
                    peer = None
                assert tls.recv(4) == b"ping"
                tls.sendall(b"pong")
                return peer

        served = pool.submit(serve)
        client: object
        try:
            raw = socket.create_connection(listener.getsockname(), timeout=TIMEOUT_S)
            with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                tls.sendall(b"ping")
                client = tls.recv(4)
        except (OSError, ssl.SSLError) as exc:
            client = exc
        try:
            return served.result(TIMEOUT_S), client
        except (OSError, ssl.SSLError) as exc:
            return exc, client


def test_the_ca_is_created_once_and_reloaded_identical(tmp_path: Path) -> None:
    first = HomeCA.load_or_create(tmp_path / "ca")

    again = HomeCA.load_or_create(tmp_path / "ca")

    assert again.cert_pem == first.cert_pem
    assert again.fingerprint == first.fingerprint
    der = x509.load_pem_x509_certificate(first.cert_pem).public_bytes(serialization.Encoding.DER)
    assert first.fingerprint == hashlib.sha256(der).hexdigest()


def test_the_ca_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    HomeCA.load_or_create(tmp_path / "ca")

    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "ca").iterdir()}

    assert modes == {"ca.key": 0o600, "ca.pem": 0o600}
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700


def test_a_ca_certificate_without_its_key_is_an_error_not_a_new_ca(tmp_path: Path) -> None:
    HomeCA.load_or_create(tmp_path / "ca")
    (tmp_path / "ca" / "ca.key").unlink()

    with pytest.raises(FileNotFoundError, match="pair every device again"):
        HomeCA.load_or_create(tmp_path / "ca")


def test_a_device_certificate_verifies_against_the_ca(ca: HomeCA) -> None:
    cert_pem, _, serial = device(ca, "kitchen-pi")

    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    assert (cert_serial(cert_pem), cert_common_name(cert_pem)) == (serial, "kitchen-pi")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["kitchen-pi"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_ca_names_the_device_whatever_the_csr_says(ca: HomeCA) -> None:
    _, csr_pem = make_csr("gateway")

    cert_pem, _ = ca.issue_device_cert(csr_pem, "kitchen-pi")

    assert cert_common_name(cert_pem) == "kitchen-pi"


def test_a_csr_with_an_invalid_signature_is_refused(ca: HomeCA) -> None:
    _, csr_pem = make_csr()
    der = bytearray(x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)

    with pytest.raises(ValueError, match="invalid signature"):
        ca.issue_device_cert(forged, "kitchen-pi")


@pytest.mark.parametrize("name", ["", "Kitchen", "-pi", "kitchen.pi", "*", "a" * 64, "pi_1"])
def test_invalid_device_names_are_refused(ca: HomeCA, name: str) -> None:
    _, csr_pem = make_csr()

    with pytest.raises(ValueError, match="device name"):
        ca.issue_device_cert(csr_pem, name)


def test_the_gateway_accepts_a_device_and_reads_its_serial_and_name(
    ca: HomeCA, gateway: tuple[bytes, bytes]
) -> None:
    cert_pem, key_pem, serial = device(ca, "kitchen-pi")

    server, client = connect(
        ca.server_context(*gateway, require_client_cert=True), ca.client_context(cert_pem, key_pem)
    )

    assert server == (serial, "kitchen-pi")
    assert client == b"pong"


def test_the_gateway_refuses_a_device_of_another_home(
    ca: HomeCA, other_ca: HomeCA, gateway: tuple[bytes, bytes]
) -> None:
    cert_pem, key_pem, _ = device(other_ca, "kitchen-pi")
    client_ctx = other_ca.client_context(cert_pem, key_pem)
    client_ctx.load_verify_locations(cadata=ca.cert_pem.decode())  # it trusts our gateway

    server, _ = connect(ca.server_context(*gateway, require_client_cert=True), client_ctx)

    assert isinstance(server, ssl.SSLCertVerificationError)


def test_the_gateway_refuses_a_client_without_a_certificate(
    ca: HomeCA, gateway: tuple[bytes, bytes]
) -> None:
    server, client = connect(
        ca.server_context(*gateway, require_client_cert=True), ca.client_context()
    )

    assert isinstance(server, ssl.SSLError)
    assert isinstance(client, OSError)


def test_the_gateway_certificate_cannot_pose_as_a_device(
    ca: HomeCA, gateway: tuple[bytes, bytes]
) -> None:
    server, _ = connect(
        ca.server_context(*gateway, require_client_cert=True), ca.client_context(*gateway)
    )

    assert isinstance(server, ssl.SSLError)  # serverAuth only: not a client certificate


def test_without_required_client_certificates_anyone_may_connect(
    ca: HomeCA, gateway: tuple[bytes, bytes]
) -> None:
    server, client = connect(
        ca.server_context(*gateway, require_client_cert=False), ca.client_context()
    )

    assert (server, client) == (None, b"pong")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_gateway_certificate_covers_its_hosts(
    ca: HomeCA, gateway: tuple[bytes, bytes], host: str
) -> None:
    cert_pem, key_pem, serial = device(ca, "kitchen-pi")

    server, client = connect(
        ca.server_context(*gateway, require_client_cert=True),
        ca.client_context(cert_pem, key_pem),
        server_hostname=host,
    )

    assert (server, client) == ((serial, "kitchen-pi"), b"pong")


def test_a_device_refuses_a_gateway_for_another_host(
    ca: HomeCA, gateway: tuple[bytes, bytes]
) -> None:
    _, client = connect(
        ca.server_context(*gateway, require_client_cert=False),
        ca.client_context(),
        server_hostname="gateway.example",
    )

    assert isinstance(client, ssl.SSLCertVerificationError)


def test_a_device_refuses_a_gateway_of_another_home(ca: HomeCA, other_ca: HomeCA) -> None:
    impostor = other_ca.issue_server_cert(["127.0.0.1"])

    _, client = connect(
        other_ca.server_context(*impostor, require_client_cert=False), ca.client_context()
    )

    assert isinstance(client, ssl.SSLCertVerificationError)


def record_client_handshake(ctx: ssl.SSLContext, sock: socket.socket, hostname: str) -> bytes:
    """Run a real client handshake on `sock` through memory buffers, send b"ping", and return
    every byte the client sent."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=hostname)
    sent = bytearray()

    def flush() -> None:
        data = outgoing.read()
        sent.extend(data)
        sock.sendall(data)

    step: Callable[[], object] = tls.do_handshake
    while True:
        try:
            step()
            break
        except ssl.SSLWantReadError:
            flush()
            incoming.write(sock.recv(65536))
    tls.write(b"ping")
    flush()
    return bytes(sent)


def test_a_replayed_client_handshake_is_refused(ca: HomeCA, gateway: tuple[bytes, bytes]) -> None:
    cert_pem, key_pem, serial = device(ca, "kitchen-pi")
    server_ctx = ca.server_context(*gateway, require_client_cert=True)
    with socket.create_server(("127.0.0.1", 0)) as listener, ThreadPoolExecutor(1) as pool:
        listener.settimeout(TIMEOUT_S)

        def serve() -> object:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT_S)
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    return peer_serial_and_name(tls), tls.recv(4)
            except ssl.SSLError as exc:
                return exc

        original = pool.submit(serve)
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT_S) as sock:
            recorded = record_client_handshake(
                ca.client_context(cert_pem, key_pem), sock, "127.0.0.1"
            )
            assert original.result(TIMEOUT_S) == ((serial, "kitchen-pi"), b"ping")

        replayed = pool.submit(serve)
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT_S) as sock:
            sock.sendall(recorded)
            outcome = replayed.result(TIMEOUT_S)

    assert isinstance(outcome, ssl.SSLError)  # new server keys: the old records do not decrypt
