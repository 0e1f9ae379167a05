"""Pairing with only the code, on a LAN where another device poses as the gateway.

The impostor here is a small HTTP server written for the test (it plays the attacker, so it is
not the product): one that answers with its own CA and a guessed code, and one that relays the
worker's messages to the real gateway and tampers with them. Against each the worker learns no
CA, sends no certificate request, or the real gateway refuses the tampered run; against the
real gateway the same code pairs."""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from spake2 import SPAKE2_B

from assistant.launcher import RunningGateway
from assistant.trust.ca import HomeCA
from edge_worker.service.credentials import Credentials
from edge_worker.service.pairing import PairingFailed, pair
from edge_worker.spec.pairing import IDENTITIES, proof, transcript
from tests.gateway.conftest import gateway_settings

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


class Impostor:
    """An HTTP server on 127.0.0.1 answering POSTs with `handle(path, body)`; it records what
    it was sent."""

    def __init__(self, handle: Handler) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        impostor = self

        class Answer(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                impostor.seen.append((self.path, body))
                try:
                    out, code = json.dumps(handle(self.path, body)).encode(), 200
                except urllib.error.HTTPError as exc:  # relay the real gateway's refusal
                    out, code = exc.read(), exc.code
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with RunningGateway(gateway_settings(tmp_path_factory.mktemp("pake"))) as gw:
        yield gw


def forward(gw: RunningGateway, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(gw.url + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def no_credentials(directory: Path) -> bool:
    return Credentials.load(directory) is None


def test_an_impostor_with_its_own_ca_learns_nothing_and_gets_nothing(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    code = gateway.call("POST", "/v1/pairing/codes")["code"]
    rogue_ca = HomeCA.load_or_create(tmp_path / "rogue-ca", "Rogue")

    def answer(path: str, body: dict[str, Any]) -> dict[str, Any]:
        b = SPAKE2_B(b"22222222", idA=IDENTITIES[0], idB=IDENTITIES[1])  # a guess
        msg_b = b.start()
        msg_a = base64.b64decode(body["msg_a"])
        key = b.finish(msg_a)
        url = "wss://127.0.0.1:1/worker"
        seen = transcript(msg_a, msg_b, rogue_ca.cert_pem, url, body["name"])
        return {
            "session": "s",
            "msg_b": base64.b64encode(msg_b).decode(),
            "ca": rogue_ca.cert_pem.decode(),
            "worker_url": url,
            "proof": proof(key, "gateway", seen),
        }

    rogue = Impostor(answer)
    try:
        with pytest.raises(PairingFailed, match="could not prove it knows this pairing code"):
            pair(rogue.url, tmp_path / "creds", "porch-pi", code)
    finally:
        rogue.close()

    assert [path for path, _ in rogue.seen] == ["/v1/pairing/pake"]  # no CSR, no second call
    assert code.replace("-", "") not in json.dumps(rogue.seen)  # the code never left the worker
    assert no_credentials(tmp_path / "creds")
    assert pair(gateway.url, tmp_path / "real", "porch-pi", code).name == "porch-pi"


def test_a_relay_that_swaps_in_its_own_ca_is_refused_by_the_worker(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    code = gateway.call("POST", "/v1/pairing/codes")["code"]
    rogue_ca = HomeCA.load_or_create(tmp_path / "rogue-ca", "Rogue")

    def relay(path: str, body: dict[str, Any]) -> dict[str, Any]:
        return {**forward(gateway, path, body), "ca": rogue_ca.cert_pem.decode()}

    rogue = Impostor(relay)
    try:
        with pytest.raises(PairingFailed, match="could not prove"):
            pair(rogue.url, tmp_path / "creds", "shed-pi", code)
    finally:
        rogue.close()

    assert [path for path, _ in rogue.seen] == ["/v1/pairing/pake"]
    assert no_credentials(tmp_path / "creds")


def test_a_relay_that_swaps_in_its_own_request_is_refused_by_the_gateway(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    code = gateway.call("POST", "/v1/pairing/codes")["code"]
    _, rogue_csr = Credentials.new_request(tmp_path / "rogue", "attic-pi")

    def relay(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("/finish"):
            body = {**body, "csr": rogue_csr.decode()}  # the rogue's key, the worker's proof
        return forward(gateway, path, body)

    rogue = Impostor(relay)
    try:
        with pytest.raises(PairingFailed, match="403"):
            pair(rogue.url, tmp_path / "creds", "attic-pi", code)
    finally:
        rogue.close()

    paired = {d["name"] for d in gateway.call("GET", "/v1/devices") if d["paired"]}
    assert "attic-pi" not in paired
    assert no_credentials(tmp_path / "creds")
