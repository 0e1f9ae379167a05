"""Only paired, unrevoked devices get in: the worker endpoint and the ring both demand the
home's certificates, and pairing codes are single-use."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from assistant.launcher import RunningGateway
from assistant.trust.ca import HomeCA
from edge_worker.service import protocol as P
from edge_worker.service.credentials import Credentials
from edge_worker.service.pairing import PairingFailed, pair
from tests.gateway.conftest import gateway_settings


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("trust")
    with RunningGateway(gateway_settings(root)) as gw:
        yield gw


def device(ca: HomeCA, directory: Path, name: str, gateway: str) -> Credentials:
    pending, csr = Credentials.new_request(directory, name)
    cert, _ = ca.issue_device_cert(csr, name)
    return pending.save(cert, ca.cert_pem, gateway)


def hello(name: str, version: int = P.VERSION) -> str:
    return P.Hello(name=name, data_host="127.0.0.1", data_port=9, version=version).model_dump_json()


async def connect(url: str, ctx: ssl.SSLContext, name: str, version: int = P.VERSION) -> str:
    """Open the worker link and say hello; returns how the gateway answered."""
    async with websockets.connect(url, ssl=ctx, open_timeout=10) as ws:
        try:  # a refused certificate is closed before its hello is read: sending may fail
            await ws.send(hello(name, version))
            first = await asyncio.wait_for(ws.recv(), 3)
        except websockets.ConnectionClosed as exc:
            frame = exc.rcvd
            return f"closed {frame.code}: {frame.reason}" if frame else "closed"
        except TimeoutError:
            return "accepted"
    # The gateway spoke first: an accepted worker is asked for its profile at once.
    return "accepted" if '"profile"' in str(first) else f"closed after {str(first)[:80]}"


def attempt(gw: RunningGateway, ctx: ssl.SSLContext, name: str, version: int = P.VERSION) -> str:
    try:
        return asyncio.run(connect(gw.state.coordinator.url, ctx, name, version))
    except (ssl.SSLError, OSError, websockets.InvalidHandshake, websockets.ConnectionClosed) as exc:
        return f"refused: {type(exc).__name__}"


def test_a_worker_without_a_certificate_is_refused(gateway: RunningGateway) -> None:
    ctx = ssl.create_default_context(cadata=gateway.state.ca.cert_pem.decode())

    assert attempt(gateway, ctx, "intruder").startswith(("refused", "closed"))


def test_a_worker_with_another_homes_certificate_is_refused(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    other = HomeCA.load_or_create(tmp_path / "other-ca", "Next Door")
    creds = device(other, tmp_path / "creds", "kitchen-pi", gateway.state.coordinator.url)
    ctx = creds.client_context()
    ctx.load_verify_locations(cadata=gateway.state.ca.cert_pem.decode())  # trust the gateway

    assert attempt(gateway, ctx, "kitchen-pi").startswith(("refused", "closed"))


def test_a_certificate_the_gateway_never_paired_is_refused(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    creds = device(gateway.state.ca, tmp_path / "creds", "ghost-pi", gateway.state.coordinator.url)

    assert "not paired" in attempt(gateway, creds.client_context(), "ghost-pi")


def test_a_device_cannot_claim_another_devices_name(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    code = gateway.call("POST", "/v1/pairing/codes")["code"]
    creds = pair(gateway.url, tmp_path / "creds", "hall-pi", code)

    assert attempt(gateway, creds.client_context(), "hall-pi") == "accepted"
    assert "certificate is for 'hall-pi'" in attempt(gateway, creds.client_context(), "laptop")


def test_a_worker_speaking_another_protocol_version_is_told_so(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    code = gateway.call("POST", "/v1/pairing/codes")["code"]
    creds = pair(gateway.url, tmp_path / "creds", "old-pi", code)

    answer = attempt(gateway, creds.client_context(), "old-pi", version=P.VERSION + 1)

    assert f"protocol version {P.VERSION + 1}" in answer and "update" in answer


def test_a_pairing_code_works_once(gateway: RunningGateway, tmp_path: Path) -> None:
    code = gateway.call("POST", "/v1/pairing/codes")["code"]
    pair(gateway.url, tmp_path / "a", "porch-pi", code)

    with pytest.raises(PairingFailed) as replay:
        pair(gateway.url, tmp_path / "b", "shed-pi", code)

    assert "403" in str(replay.value) and "used or expired" in str(replay.value)


def test_the_owner_can_approve_a_pairing_request(gateway: RunningGateway, tmp_path: Path) -> None:
    _, csr = Credentials.new_request(tmp_path / "c", "attic-pi")
    ticket = gateway.call(
        "POST", "/v1/pairing/requests", {"name": "attic-pi", "csr": csr.decode()}, token=None
    )
    assert (
        gateway.call("GET", f"/v1/pairing/requests/{ticket['id']}", token=None)["credentials"]
        is None
    )

    gateway.call("POST", f"/v1/pairing/requests/{ticket['id']}/approve")

    status = gateway.call("GET", f"/v1/pairing/requests/{ticket['id']}", token=None)
    assert status["status"] == "approved"
    assert "BEGIN CERTIFICATE" in status["credentials"]["cert"]


def test_a_revoked_worker_is_cut_off_and_refused_from_then_on(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    (worker,) = gateway.add_workers(["garage-pi"], tmp_path / "workers")
    gateway.wait_online(["garage-pi"])

    revoked = gateway.call("POST", "/v1/devices/garage-pi/revoke")

    assert revoked["revoked"] and not revoked["online"]
    worker.proc.wait(30)  # its reconnection is refused: the process gives up with an error
    assert "refused" in worker.log_path.read_text()
    creds = Credentials.load(tmp_path / "workers" / "garage-pi" / "credentials")
    assert creds is not None
    assert "not paired, or was revoked" in attempt(gateway, creds.client_context(), "garage-pi")
    assert "garage-pi" not in gateway.state.manager.online()


def test_pairing_checks_the_home_ca_fingerprint_when_given(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    from edge_worker.service.pairing import PairingFailed, pair

    wrong = gateway.call("POST", "/v1/pairing/codes")["code"]
    with pytest.raises(PairingFailed, match="fingerprint"):
        pair(gateway.url, tmp_path / "a", "cellar-pi", wrong, ca_fingerprint="00" * 32)

    code = gateway.call("POST", "/v1/pairing/codes")
    creds = pair(
        gateway.url,
        tmp_path / "b",
        "wine-pi",
        code["code"],
        ca_fingerprint=code["ca_fingerprint"],
    )
    assert creds.name == "wine-pi"
