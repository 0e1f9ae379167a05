"""Pairing: one-time codes, or a request the owner approves; the worker gets its certificate.

  owner:  POST /v1/pairing/codes                 -> code (also logged by the gateway)
  worker: POST /v1/pairing/pake {code_id, name, msg_a} -> session, msg_b, CA, proof
  worker: POST /v1/pairing/pake/{session}/finish {csr, proof} -> certificate, CA, worker URL
          (SPAKE2 over the code: the code itself never crosses the network; see
          edge_worker/spec/pairing.py)
or
  worker: POST /v1/pairing/requests {name, csr}  -> id (pending)
  owner:  POST /v1/pairing/requests/{id}/approve
  worker: GET  /v1/pairing/requests/{id}          -> certificate once approved
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import time

from fastapi import APIRouter, HTTPException, Path, Request, status

from assistant.api.deps import Authorized, StateDep
from assistant.api.guard import GuardedRoute
from assistant.api.schemas import (
    Credentials,
    PairingCodeOut,
    PairingRequestIn,
    PairingRequestOut,
    PakeFinish,
    PakeStart,
    PakeStarted,
)
from assistant.errors import PairingRefused
from assistant.store import PairingRequest

log = logging.getLogger(__name__)
router = APIRouter(prefix="/pairing", tags=["pairing"], route_class=GuardedRoute)


def _issue(state: StateDep, name: str, csr: str) -> Credentials:
    device = state.store.device(name)
    if device is not None and not device.revoked:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"a device named {name!r} is already paired"
        )
    try:
        cert, serial = state.ca.issue_device_cert(
            csr.encode(), name, days=state.settings.device_cert_days
        )
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"bad CSR: {exc}"
        ) from None
    state.store.add_device(name, serial)
    log.info("paired device %s", name)
    return Credentials(
        name=name,
        cert=cert.decode(),
        ca=state.ca.cert_pem.decode(),
        ca_fingerprint=state.ca.fingerprint,
        worker_url=state.coordinator.url,
    )


@router.post("/codes")
def new_code(state: StateDep, _: Authorized) -> PairingCodeOut:
    code = state.codes.new()
    log.warning("pairing code: %s (valid %.0f s)", code, state.codes.ttl_s)
    return PairingCodeOut(
        code=code, expires_in_s=state.codes.ttl_s, ca_fingerprint=state.ca.fingerprint
    )


@router.post("/pake")
def pake_start(body: PakeStart, request: Request, state: StateDep) -> PakeStarted:
    """A worker starts pairing by code: SPAKE2 with the live code whose public id it names
    (no token: knowing the code is the credential; rate-limited per address)."""
    source = request.client.host if request.client else "?"
    code = state.codes.lookup(body.code_id, source)  # PairingRateLimited: 429 (api/errors.py)
    if code is None:
        raise PairingRefused("unknown, used or expired pairing code: ask the owner for a new one")
    try:
        msg_a = base64.b64decode(body.msg_a, validate=True)
    except binascii.Error:
        raise PairingRefused("msg_a is not base64") from None
    started = state.pake.start(code, body.name, msg_a, state.ca.cert_pem, state.coordinator.url)
    return PakeStarted(
        session=started.session,
        msg_b=base64.b64encode(started.msg_b).decode(),
        ca=state.ca.cert_pem.decode(),
        worker_url=state.coordinator.url,
        proof=started.proof,
    )


@router.post("/pake/{session}/finish")
def pake_finish(
    body: PakeFinish, state: StateDep, session: str = Path(max_length=64)
) -> Credentials:
    """The worker proves it holds the same SPAKE2 key and sent this CSR: it is paired."""
    code, name = state.pake.finish(session, body.csr.encode(), body.proof)
    if not state.codes.consume(code):
        raise PairingRefused("the pairing code was used or expired meanwhile: ask for a new one")
    return _issue(state, name, body.csr)


@router.post("/requests", status_code=status.HTTP_202_ACCEPTED)
def request_pairing(body: PairingRequestIn, request: Request, state: StateDep) -> PairingRequestOut:
    """A worker without a code asks to be paired; the owner approves it in the dashboard."""
    if len(state.store.pairing_requests()) >= 32:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail="too many pending requests")
    req = PairingRequest(
        id=secrets.token_urlsafe(16),
        name=body.name,
        csr=body.csr,
        source=request.client.host if request.client else "?",
        created=time.time(),
        status="pending",
        cert=None,
    )
    state.store.add_pairing_request(req)
    log.warning("device %s asks to be paired (request %s)", body.name, req.id)
    return PairingRequestOut(id=req.id, name=req.name, status="pending")


@router.get("/requests")
def pending_requests(state: StateDep, _: Authorized) -> list[PairingRequestOut]:
    return [
        PairingRequestOut(id=r.id, name=r.name, status="pending")
        for r in state.store.pairing_requests()
    ]


@router.get("/requests/{req_id}")
def pairing_status(req_id: str, state: StateDep) -> PairingRequestOut:
    """Polled by the worker; the unguessable id is its claim ticket."""
    req = state.store.pairing_request(req_id)
    if req is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such pairing request")
    creds = None
    if req.status == "approved" and req.cert is not None:
        creds = Credentials(
            name=req.name,
            cert=req.cert,
            ca=state.ca.cert_pem.decode(),
            ca_fingerprint=state.ca.fingerprint,
            worker_url=state.coordinator.url,
        )
    return PairingRequestOut(id=req.id, name=req.name, status=req.status, credentials=creds)


@router.post("/requests/{req_id}/approve")
def approve(req_id: str, state: StateDep, _: Authorized) -> PairingRequestOut:
    req = state.store.pairing_request(req_id)
    if req is None or req.status != "pending":
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no pending request with that id")
    creds = _issue(state, req.name, req.csr)
    state.store.settle_pairing_request(req_id, "approved", creds.cert)
    return PairingRequestOut(id=req.id, name=req.name, status="approved")


@router.post("/requests/{req_id}/deny")
def deny(req_id: str, state: StateDep, _: Authorized) -> PairingRequestOut:
    req = state.store.pairing_request(req_id)
    if req is None or req.status != "pending":
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no pending request with that id")
    state.store.settle_pairing_request(req_id, "denied", None)
    return PairingRequestOut(id=req.id, name=req.name, status="denied")
