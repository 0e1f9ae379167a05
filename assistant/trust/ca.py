"""The home certificate authority: the gateway's root of trust (DESIGN.md section 4).

    ca = HomeCA.load_or_create(data_dir / "ca")       # ca.key + ca.pem (0600), made once
    cert_pem, serial = ca.issue_device_cert(csr_pem, "kitchen-pi")
    cert_pem, key_pem = ca.issue_server_cert(["127.0.0.1", "localhost", "gateway.local"])
    ctx = ca.server_context(cert_pem, key_pem, require_client_cert=True)
    serial, name = peer_serial_and_name(ssl_object)   # check `serial` against the revoked list

Contract:
- One EC P-256 key and a self-signed CA certificate (10 years, path length 0). An existing pair
  is reused as is; a certificate without its key is an error, never silently replaced, since
  replacing the CA unpairs every device.
- A device certificate names the device as CN and SAN DNS (`[a-z0-9][a-z0-9-]{0,62}`), allows
  clientAuth and serverAuth and has a random 159-bit serial. The CA decides the name: a CSR
  contributes only its public key, and only once its signature verifies.
- Contexts speak TLS 1.3 only, trust this CA alone (no system roots) and issue no session
  tickets, so every connection is a full handshake with a certificate the gateway can check.
- Revocation is the gateway's: it compares `peer_serial_and_name(...)` with its revoked serials on
  every new connection. The CA keeps no CRL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import re
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_worker.service.credentials import write_private

log = logging.getLogger(__name__)

DEVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CA_DAYS = 3652
SERVER_DAYS = 825
BACKDATE = dt.timedelta(days=1)  # devices without a real-time clock boot a little in the past
_KEY_FILE, _CERT_FILE = "ca.key", "ca.pem"


class HomeCA:
    """The CA key and certificate; issues device and gateway certificates and TLS contexts."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self._key, self._cert = key, cert
        self.cert_pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
        self.fingerprint: str = hashlib.sha256(
            cert.public_bytes(serialization.Encoding.DER)
        ).hexdigest()

    @classmethod
    def load_or_create(cls, directory: Path, home_name: str = "Galaxy Home") -> HomeCA:
        """Load the CA from `directory`, or create it there (directory 0700, files 0600)."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path, cert_path = directory / _KEY_FILE, directory / _CERT_FILE
        if cert_path.exists():
            if not key_path.exists():
                raise FileNotFoundError(
                    f"{cert_path} exists but its key {key_path} does not; restore the key from "
                    "a backup, or delete the certificate to make a new CA and pair every device "
                    "again"
                )
            return cls._load(key_path, cert_path)
        key = ec.generate_private_key(ec.SECP256R1())
        # a per-home suffix: two homes' CAs never share a name, so chains cannot be confused
        name = _name(f"{home_name} CA {secrets.token_hex(4)}")
        extensions = [(x509.BasicConstraints(ca=True, path_length=0), True)]
        cert = _certificate(name, key.public_key(), name, key, CA_DAYS, extensions)
        write_private(key_path, _key_pem(key))  # the key first: never a cert without its key
        write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        ca = cls(key, cert)
        log.info("created the home CA in %s (fingerprint %s)", directory, ca.fingerprint)
        return ca

    @classmethod
    def _load(cls, key_path: Path, cert_path: Path) -> HomeCA:
        for path in (key_path, cert_path):
            if path.stat().st_mode & 0o077:
                log.warning("%s was readable by others; restricting it to its owner", path)
                path.chmod(0o600)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise ValueError(f"{key_path} is not the key of {cert_path}; restore the pair")
        return cls(key, cert)

    def issue_device_cert(
        self, csr_pem: bytes, device_name: str, days: int = 825
    ) -> tuple[bytes, int]:
        """(certificate PEM, serial) for the CSR's key, named `device_name`; ValueError if the
        name is invalid, the CSR does not parse, its signature is invalid or its key is weak."""
        if not DEVICE_NAME.fullmatch(device_name):
            raise ValueError(
                f"device name {device_name!r} is not 1-63 of a-z, 0-9 and '-' "
                "(starting with a letter or digit)"
            )
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError(f"the certificate request for {device_name} has an invalid signature")
        cert = self._issue(
            _strong_key(csr.public_key(), device_name),
            device_name,
            [x509.DNSName(device_name)],
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
            days,
        )
        log.info("issued certificate %x to %s (%d days)", cert.serial_number, device_name, days)
        return cert.public_bytes(serialization.Encoding.PEM), cert.serial_number

    def issue_server_cert(self, hosts: list[str]) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for the gateway, valid for `hosts` (IP addresses become
        SAN IPs, anything else SAN DNS names). A fresh P-256 key each call."""
        if not hosts:
            raise ValueError("a server certificate needs at least one host name or address")
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host.lower()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(
            key.public_key(), hosts[0][:64], names, [ExtendedKeyUsageOID.SERVER_AUTH], SERVER_DAYS
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def _issue(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        common_name: str,
        names: list[x509.GeneralName],
        purposes: list[x509.ObjectIdentifier],
        days: int,
    ) -> x509.Certificate:
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage(purposes), False),
            (x509.SubjectAlternativeName(names), False),
            (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False),
        ]
        subject = _name(common_name)
        return _certificate(subject, public_key, self._cert.subject, self._key, days, extensions)

    def server_context(
        self, cert_pem: bytes, key_pem: bytes, *, require_client_cert: bool
    ) -> ssl.SSLContext:
        """A TLS 1.3 server context presenting `cert_pem`; when `require_client_cert`, clients
        must present a certificate from this CA (the handshake fails otherwise)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.num_tickets = 0  # no resumption: every connection shows its certificate afresh
        ctx.load_verify_locations(cadata=self.cert_pem.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
        _load_chain(ctx, cert_pem, key_pem)
        return ctx

    def client_context(
        self, cert_pem: bytes | None = None, key_pem: bytes | None = None
    ) -> ssl.SSLContext:
        """A TLS 1.3 client context trusting only this CA, checking the server's host name,
        and presenting `cert_pem` when given."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(cadata=self.cert_pem.decode())
        if cert_pem is not None:
            if key_pem is None:
                raise ValueError("a client certificate needs its key")
            _load_chain(ctx, cert_pem, key_pem)
        return ctx


def cert_serial(cert_pem: bytes) -> int:
    return int(x509.load_pem_x509_certificate(cert_pem).serial_number)


def cert_common_name(cert_pem: bytes) -> str:
    return _common_name(x509.load_pem_x509_certificate(cert_pem))


def peer_serial_and_name(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> tuple[int, str]:
    """(serial, CN) of the certificate the peer presented; ValueError if it presented none."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise ValueError("the peer presented no certificate")
    cert = x509.load_der_x509_certificate(der)
    return int(cert.serial_number), _common_name(cert)


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ValueError(f"certificate {cert.serial_number:x} has no common name")
    value = names[0].value
    return value if isinstance(value, str) else value.decode()


def _strong_key(key: object, device_name: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    raise ValueError(
        f"the certificate request for {device_name} has an unsupported key "
        "(use EC P-256/P-384 or RSA of 2048 bits or more)"
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    days: int,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """Signed by `signer`, valid from BACKDATE ago for `days`, random serial; key usage
    follows from BasicConstraints (a CA signs certificates, a leaf signs handshakes)."""
    now = dt.datetime.now(dt.UTC)
    is_ca = any(isinstance(e, x509.BasicConstraints) and e.ca for e, _ in extensions)
    usage = x509.KeyUsage(
        digital_signature=not is_ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(signer, hashes.SHA256())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """`ssl` loads keys only from files: a private temporary directory, removed at once."""
    with tempfile.TemporaryDirectory(prefix="galaxy-tls-") as tmp:
        path = Path(tmp) / "chain.pem"
        write_private(path, key_pem + b"\n" + cert_pem)
        ctx.load_cert_chain(path)
