"""A worker's identity in the home: its key, its certificate from the home CA, the CA
certificate and the gateway it paired with, and the TLS contexts built from them.

    creds = Credentials.load(data_dir / "credentials")          # None until paired
    if creds is None:
        pending, csr_pem = Credentials.new_request(data_dir / "credentials", "kitchen-pi")
        ...  # pairing: send csr_pem with the code, receive cert_pem and ca_pem
        creds = pending.save(cert_pem, ca_pem, gateway="wss://192.168.1.5:8765")
    ctx = creds.client_context()                        # wss:// to the gateway
    ring_server_ctx, ring_client_ctx = creds.ring_contexts()

Contract:
- The private key (EC P-256) is made on the device and never leaves it. Files live in
  `directory` (0700), each 0600: key.pem, cert.pem, ca.pem and gateway.json (name, gateway).
- A request keeps its key in key.pending.pem; `save` checks that the certificate is signed by
  `ca_pem`, names this device and holds this key before moving everything into place, so asking
  again (re-pairing) never breaks working credentials before new ones arrive.
- `load` is None when nothing is paired, and raises ValueError for files that do not belong
  together (pair again).
- Every context speaks TLS 1.3, trusts only the home CA and presents this device's certificate.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import ssl
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_worker.comm import tls

log = logging.getLogger(__name__)

RENEW_DAYS = 30  # renew with this much left (or a third of the life, if more)
DEVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
KEY, PENDING_KEY, CERT, CA, META = (
    "key.pem",
    "key.pending.pem",
    "cert.pem",
    "ca.pem",
    "gateway.json",
)


@dataclass(frozen=True)
class PendingCredentials:
    """A key waiting for its certificate: the first half of pairing."""

    directory: Path
    name: str

    def save(self, cert_pem: bytes, ca_pem: bytes, gateway: str) -> Credentials:
        """Check the gateway's answer against this request and store it; ValueError if the
        certificate is not from `ca_pem`, names another device or holds another key."""
        key_pem = (self.directory / PENDING_KEY).read_bytes()
        _check(key_pem, cert_pem, ca_pem, self.name)
        for name, data in ((CERT, cert_pem), (CA, ca_pem), (META, _meta(self.name, gateway))):
            write_private(self.directory / f"{name}.new", data)
        os.replace(self.directory / PENDING_KEY, self.directory / KEY)
        for name in (CERT, CA, META):
            os.replace(self.directory / f"{name}.new", self.directory / name)
        log.info("certificate for %s (gateway %s) stored in %s", self.name, gateway, self.directory)
        return Credentials(self.name, cert_pem, self.directory / KEY, ca_pem, gateway)


@dataclass(frozen=True)
class Credentials:
    """A paired device's certificate, key file, home CA and gateway."""

    name: str
    cert_pem: bytes
    key_path: Path
    ca_pem: bytes
    gateway: str

    @property
    def cert_path(self) -> Path:
        return self.key_path.with_name(CERT)

    @property
    def serial(self) -> int:
        return int(x509.load_pem_x509_certificate(self.cert_pem).serial_number)

    def needs_renewal(self, now: dt.datetime | None = None) -> bool:
        """True when less than `RENEW_DAYS` days, or a third of the certificate's life
        (whichever is more), is left: then the worker asks the gateway for a new one over its
        authenticated link."""
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        left = end - (now or dt.datetime.now(dt.UTC))
        return left < max(dt.timedelta(days=RENEW_DAYS), (end - start) / 3)

    def renewal(self) -> tuple[PendingCredentials, bytes]:
        """A new key (kept pending until its certificate arrives) and its request."""
        return Credentials.new_request(self.key_path.parent, self.name)

    def moved(self, gateway: str) -> Credentials:
        """The same identity with the gateway at a new address (found again by mDNS after its
        old one stopped answering), saved so the next start goes there directly."""
        write_private(self.key_path.with_name(META), _meta(self.name, gateway))
        log.info("%s: the gateway is now at %s (saved)", self.name, gateway)
        return replace(self, gateway=gateway)

    @classmethod
    def load(cls, directory: Path) -> Credentials | None:
        """The stored credentials, or None if this device has not been paired."""
        paths = [directory / f for f in (KEY, CERT, CA, META)]
        if not all(p.exists() for p in paths):
            return None
        key_path, cert_path, ca_path, meta_path = paths
        meta = json.loads(meta_path.read_text())
        cert_pem, ca_pem = cert_path.read_bytes(), ca_path.read_bytes()
        try:
            _check(key_path.read_bytes(), cert_pem, ca_pem, meta["name"])
        except ValueError as exc:
            raise ValueError(
                f"the credentials in {directory} do not fit together ({exc}); "
                "delete them and pair this device again"
            ) from exc
        return cls(meta["name"], cert_pem, key_path, ca_pem, meta["gateway"])

    @classmethod
    def new_request(cls, directory: Path, device_name: str) -> tuple[PendingCredentials, bytes]:
        """Make and store a fresh key (0600) and return it pending, with its CSR (PEM)."""
        if not DEVICE_NAME.fullmatch(device_name):
            raise ValueError(
                f"device name {device_name!r} is not 1-63 of a-z, 0-9 and '-' "
                "(starting with a letter or digit)"
            )
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        write_private(
            directory / PENDING_KEY,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_name)])
        csr = (
            x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        )
        return PendingCredentials(directory, device_name), csr.public_bytes(
            serialization.Encoding.PEM
        )

    def client_context(self) -> ssl.SSLContext:
        """For wss:// to the gateway: trusts only the home CA, presents this device."""
        return tls.client_context(self.cert_path, self.key_path, self.ca_pem)

    def ring_contexts(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        """(server, client) contexts for ring sockets: mutual TLS within the home."""
        return (
            tls.server_context(self.cert_path, self.key_path, self.ca_pem),
            tls.client_context(self.cert_path, self.key_path, self.ca_pem),
        )


def _check(key_pem: bytes, cert_pem: bytes, ca_pem: bytes, name: str) -> None:
    key = serialization.load_pem_private_key(key_pem, password=None)
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except Exception as exc:  # InvalidSignature, ValueError, TypeError
        raise ValueError("the certificate is not signed by the home CA") from exc
    if key.public_key() != cert.public_key():
        raise ValueError("the certificate is for another key")
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [name]:
        raise ValueError(f"the certificate names {names}, not {name}")


def _meta(name: str, gateway: str) -> bytes:
    return json.dumps({"name": name, "gateway": gateway}, indent=2).encode()


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, readable by its owner only (0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # O_CREAT keeps an old file's mode: start from none
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
