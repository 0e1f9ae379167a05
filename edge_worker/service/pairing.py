"""The worker's side of pairing: trade a one-time code (or the owner's approval) for a
certificate from the home CA, over the gateway's HTTP API.

    creds = pair(api_url, data_dir / "credentials", name, code="ABCD-EFGH")

The private key is made here and never leaves the device: only its CSR is sent. With a code,
the worker runs SPAKE2 over it (edge_worker/spec/pairing.py): the code is never sent, and the
home CA is trusted only once the gateway has proved it knows the same code; a device posing as
the gateway learns nothing and is refused before the worker sends anything else. Without a
code, the worker files a request and waits until the owner approves it (then the CA is taken
on first use, unless `ca_fingerprint` pins it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from spake2 import SPAKE2_A

from edge_worker.errors import GalaxyError
from edge_worker.service.credentials import Credentials
from edge_worker.spec.pairing import IDENTITIES, code_id, normalise, proof, proofs_match, transcript

log = logging.getLogger(__name__)


class PairingFailed(GalaxyError):
    """The gateway refused to pair this device."""


def ca_sha256(ca_pem: bytes) -> str:
    """SHA-256 of the CA certificate (DER), as the gateway shows it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        der = x509.load_pem_x509_certificate(ca_pem).public_bytes(Encoding.DER)
    except ValueError:
        return "not a certificate"
    return hashlib.sha256(der).hexdigest()


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise PairingFailed(f"gateway answered {exc.code} to {url}: {detail}") from None
    except urllib.error.URLError as exc:
        raise PairingFailed(f"cannot reach the gateway at {url}: {exc.reason}") from None


def _pair_with_code(api: str, name: str, code: str, csr: bytes) -> dict[str, Any]:
    """SPAKE2 over `code`; the CA and the certificate only from a gateway that proves it."""
    a = SPAKE2_A(normalise(code).encode(), idA=IDENTITIES[0], idB=IDENTITIES[1])
    msg_a = a.start()
    started = _call(
        "POST",
        f"{api}/pake",
        {"code_id": code_id(code), "name": name, "msg_a": base64.b64encode(msg_a).decode()},
    )
    try:
        msg_b = base64.b64decode(started["msg_b"], validate=True)
        key = a.finish(msg_b)
        seen = transcript(msg_a, msg_b, started["ca"].encode(), started["worker_url"], name)
    except Exception as exc:  # a malformed answer: whoever answered is not our gateway
        raise PairingFailed(f"the gateway's pairing answer is malformed: {exc}") from None
    if not proofs_match(proof(key, "gateway", seen), str(started.get("proof", ""))):
        raise PairingFailed(
            "the device that answered could not prove it knows this pairing code: a mistyped "
            "code, or a device posing as the gateway; nothing was sent to it"
        )
    answer = _call(
        "POST",
        f"{api}/pake/{started['session']}/finish",
        {"csr": csr.decode(), "proof": proof(key, "worker", seen, csr)},
    )
    if answer.get("ca") != started["ca"]:
        raise PairingFailed("the gateway's CA changed during pairing: not pairing with it")
    return answer


def pair(
    api_url: str,
    directory: Path,
    name: str,
    code: str | None = None,
    poll_s: float = 2.0,
    wait_s: float = 3600.0,
    ca_fingerprint: str | None = None,
) -> Credentials:
    """Pair with the gateway at `api_url` (http://host:port) and store the credentials.

    With a code, the gateway proves itself through the code (SPAKE2); `ca_fingerprint` (shown
    with the code by `galaxy pair`) adds a check of the CA, and is the only protection when the
    owner approves a device instead.
    """
    pending, csr = Credentials.new_request(directory, name)
    api = api_url.rstrip("/") + "/v1/pairing"
    if code is not None:
        answer = _pair_with_code(api, name, code, csr)
    else:
        ticket = _call("POST", f"{api}/requests", {"name": name, "csr": csr.decode()})
        log.warning(
            "asked %s to pair %s: approve it in the dashboard (request %s)",
            api_url,
            name,
            ticket["id"],
        )
        deadline = time.monotonic() + wait_s
        while True:
            status = _call("GET", f"{api}/requests/{ticket['id']}")
            if status["status"] == "approved" and status.get("credentials"):
                answer = status["credentials"]
                break
            if status["status"] == "denied":
                raise PairingFailed(f"the owner denied pairing {name}")
            if time.monotonic() > deadline:
                raise PairingFailed(f"nobody approved {name} within {wait_s:.0f} s")
            time.sleep(poll_s)
    if ca_fingerprint is not None:
        got = ca_sha256(answer.get("ca", "").encode())
        if got != ca_fingerprint.lower().replace(":", ""):
            raise PairingFailed(
                f"the gateway's CA fingerprint is {got}, not {ca_fingerprint}: not pairing with it"
            )
    try:
        worker_url = reachable(answer["worker_url"], api_url)
        return pending.save(answer["cert"].encode(), answer["ca"].encode(), worker_url)
    except (KeyError, ValueError) as exc:
        raise PairingFailed(f"the gateway's answer does not fit this device: {exc}") from None


def reachable(worker_url: str, api_url: str) -> str:
    """`worker_url` with a wildcard host (a gateway listening on 0.0.0.0) replaced by the host
    this device reached the gateway's API on."""
    url = urllib.parse.urlsplit(worker_url)
    if url.hostname not in ("0.0.0.0", "::"):
        return worker_url
    host = urllib.parse.urlsplit(api_url).hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return url._replace(netloc=f"{host}:{url.port}").geturl()
