"""Hostile credentials and pairing codes (cases 1-15; conftest.py says how every case ends).

Credentials
  1. no API token                              401 + WWW-Authenticate
  2. a token of another home                   401
  3-5. forged tokens: right prefix and random; 8 KB long; bytes that are not ASCII   401
  6. a token revoked a moment ago (HTTP and websocket)   401
  7. a read-only token changing the home       403, the home unchanged
  8. a worker certificate from another home's CA   TLS refused by the worker endpoint
  9. a revoked device reconnecting             closed 1008 "not paired, or was revoked"
Pairing codes
 10. a code used already                       403 "unknown, used or expired"
 11. an expired code                           403
 12. a pairing exchange replayed               403 "no such pairing session"
 13. guessing a code's secret online           403 each run; burnt after 5 runs
 14. a flood of attempts from one address      429 + Retry-After; other addresses unaffected
 15. a rogue gateway announced on mDNS         the worker refuses it and sends it nothing
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.sync.client import connect as ws_connect

from assistant.trust.ca import HomeCA
from assistant.trust.tokens import new_token
from edge_worker.service.pairing import PairingFailed, pair
from edge_worker.spec.pairing import MAX_STARTS
from tests.security.conftest import HOME_NAME, Home
from tests.security.hostile import (
    announce_and_find,
    device,
    pairing_run,
    request,
    rogue_answer,
    worker_link,
)
from tests.trust.test_pake import Impostor

pytestmark = [pytest.mark.slow, pytest.mark.long]

# ----- credentials ---------------------------------------------------------------------------


def test_a_request_without_a_token_is_refused(home: Home) -> None:
    status, body, headers = request(home.gw, "GET", "/v1/devices", token=None)

    assert status == 401 and "missing or invalid API token" in body["detail"]
    assert headers["www-authenticate"] == "Bearer"
    home.assert_still_serving()


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(new_token(), id="another-homes-token"),
        pytest.param("gh_" + secrets.token_urlsafe(32), id="forged-right-prefix"),
        pytest.param("gh_" + "A" * 8000, id="forged-8-kb"),
        pytest.param("gh_\xe9\xff", id="forged-not-ascii"),
    ],
)
def test_a_token_this_home_never_issued_is_refused(home: Home, token: str) -> None:
    status, body, _ = request(
        home.gw,
        "POST",
        "/v1/home/devices/light.kitchen_ceiling",
        token=token,
        body=b'{"on": false}',
    )

    assert status == 401 and "API token" in body["detail"]
    home.assert_still_serving()


def test_a_token_revoked_a_moment_ago_is_refused(home: Home) -> None:
    made = home.gw.call("POST", "/v1/tokens", {"name": "guest tablet"})
    assert request(home.gw, "GET", "/v1/devices", token=made["token"])[0] == 200

    home.gw.call("DELETE", f"/v1/tokens/{made['id']}")
    status, body, _ = request(home.gw, "GET", "/v1/devices", token=made["token"])
    url = home.gw.url.replace("http", "ws") + f"/v1/events?token={made['token']}"
    with pytest.raises(websockets.InvalidStatus) as ws_refusal:
        ws_connect(url, open_timeout=10).close()

    assert status == 401 and "API token" in body["detail"]
    assert ws_refusal.value.response.status_code == 401
    home.assert_still_serving()


def test_a_read_only_token_cannot_change_the_home(home: Home) -> None:
    reader = home.gw.call("POST", "/v1/tokens", {"name": "wall display", "scope": "read"})
    before = home.gw.call("GET", "/v1/home")

    status, body, _ = request(
        home.gw,
        "POST",
        "/v1/home/devices/light.kitchen_ceiling",
        b'{"on": false}',
        token=reader["token"],
    )

    assert status == 403 and "read-only" in body["detail"]
    assert home.gw.call("GET", "/v1/home")["devices"] == before["devices"]
    home.assert_still_serving()


def test_a_worker_certificate_from_another_homes_ca_is_refused(home: Home, tmp_path: Path) -> None:
    other = HomeCA.load_or_create(tmp_path / "ca", "Next Door")
    creds = device(other, tmp_path / "creds", "kitchen-pi")  # even with a known name
    ctx = creds.client_context()
    ctx.load_verify_locations(cadata=home.gw.state.ca.cert_pem.decode())  # it trusts ours

    answer = worker_link(home.gw, ctx, "kitchen-pi")

    assert answer.startswith(("refused", "closed")), answer
    home.assert_still_serving()


def test_a_revoked_device_reconnecting_is_refused(home: Home, tmp_path: Path) -> None:
    code = home.gw.call("POST", "/v1/pairing/codes")["code"]
    creds = pair(home.gw.url, tmp_path / "creds", "garage-pi", code)
    home.gw.call("POST", "/v1/devices/garage-pi/revoke")

    answer = worker_link(home.gw, creds.client_context(), "garage-pi")

    assert answer.startswith("closed 1008") and "not paired, or was revoked" in answer
    home.assert_still_serving()


# ----- pairing codes -------------------------------------------------------------------------


def test_a_pairing_code_used_already_is_refused(home: Home, tmp_path: Path) -> None:
    code = home.gw.call("POST", "/v1/pairing/codes")["code"]
    pair(home.gw.url, tmp_path / "porch", "porch-pi", code)

    status, body, _ = pairing_run(home.gw, code, "shed-pi", "127.0.0.4", tmp_path / "shed")

    assert status == 403 and "unknown, used or expired" in body["detail"]
    assert "shed-pi" not in {d["name"] for d in home.gw.call("GET", "/v1/devices")}
    home.assert_still_serving()


def test_an_expired_pairing_code_is_refused(home: Home, tmp_path: Path) -> None:
    codes = home.gw.state.codes
    ttl, codes.ttl_s = codes.ttl_s, 0.3
    try:
        code = home.gw.call("POST", "/v1/pairing/codes")["code"]
    finally:
        codes.ttl_s = ttl
    time.sleep(0.5)

    status, body, _ = pairing_run(home.gw, code, "late-pi", "127.0.0.4", tmp_path)

    assert status == 403 and "unknown, used or expired" in body["detail"]
    home.assert_still_serving()


def test_a_replayed_pairing_exchange_is_refused(home: Home, tmp_path: Path) -> None:
    code = home.gw.call("POST", "/v1/pairing/codes")["code"]

    def relay(path: str, body: dict[str, Any]) -> dict[str, Any]:  # records what it carries
        return home.gw.call("POST", path, body, token=None)  # type: ignore[no-any-return]

    wire = Impostor(relay)
    try:
        pair(wire.url, tmp_path / "hall", "hall-pi", code)
    finally:
        wire.close()
    path, finish = wire.seen[-1]

    status, body, _ = request(
        home.gw, "POST", path, json.dumps(finish).encode(), token=None, source="127.0.0.4"
    )

    assert path.endswith("/finish")
    assert status == 403 and "no such pairing session" in body["detail"]
    home.assert_still_serving()


def test_guessing_a_codes_secret_online_burns_the_code(home: Home, tmp_path: Path) -> None:
    code = home.gw.call("POST", "/v1/pairing/codes")["code"]  # its first 2 characters are public

    runs = [
        pairing_run(home.gw, code, "evil-pi", "127.0.0.3", tmp_path / str(i), guess=f"{i}" * 6)
        for i in range(2, 2 + MAX_STARTS + 1)
    ]

    *guesses, last = runs
    assert [s for s, _, _ in guesses] == [403] * MAX_STARTS
    assert all("proof" in b["detail"] for _, b, _ in guesses)
    assert last[0] == 403 and "unknown, used or expired" in last[1]["detail"]
    with pytest.raises(PairingFailed, match="403"):  # the owner's device: the code is burnt
        pair(home.gw.url, tmp_path / "owner", "attic-pi", code)
    home.assert_still_serving()


def test_a_flood_of_pairing_attempts_is_rate_limited(home: Home, tmp_path: Path) -> None:
    limit = home.gw.state.codes.max_attempts
    flood = [
        pairing_run(home.gw, "ZZZZ-ZZZZ", "flood-pi", "127.0.0.2", tmp_path)
        for _ in range(limit + 1)
    ]

    assert [s for s, _, _ in flood] == [403] * limit + [429]
    _, body, headers = flood[-1]
    assert "too many pairing attempts" in body["detail"] and int(headers["retry-after"]) > 0
    other = pairing_run(home.gw, "ZZZZ-ZZZZ", "other-pi", "127.0.0.5", tmp_path)
    assert other[0] == 403  # another address is not locked out
    home.assert_still_serving()


def test_a_rogue_gateway_announced_on_mdns_learns_nothing(home: Home, tmp_path: Path) -> None:
    code = home.gw.call("POST", "/v1/pairing/codes")["code"]
    rogue_ca = HomeCA.load_or_create(tmp_path / "rogue-ca", "Rogue")
    rogue = Impostor(lambda path, body: rogue_answer(rogue_ca, body))
    try:
        found = asyncio.run(announce_and_find(HOME_NAME, rogue.server.server_port))
        with pytest.raises(PairingFailed, match="could not prove it knows this pairing code"):
            pair(f"http://{found.host}:{found.api_port}", tmp_path / "c", "porch-pi-2", code)
    finally:
        rogue.close()

    assert found.api_port == rogue.server.server_port  # the worker did go to the rogue
    assert [path for path, _ in rogue.seen] == ["/v1/pairing/pake"]  # no CSR, nothing else
    assert code.replace("-", "") not in json.dumps(rogue.seen)
    assert pair(home.gw.url, tmp_path / "real", "porch-pi-2", code).name == "porch-pi-2"
    home.assert_still_serving()
