"""The household's credentials: several named tokens with a scope, revoked at once, and the
gateway's state saved and restored as one file only the owner's token opens."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.launcher import RunningGateway
from edge_worker.service.pairing import pair
from tests.gateway.conftest import gateway_settings


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("tokens")
    with RunningGateway(gateway_settings(root)) as gw:
        yield gw


def status_of(gw: RunningGateway, method: str, path: str, token: str, body: object = None) -> int:
    try:
        gw.call(method, path, body, token=token)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def galaxy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_a_read_only_token_reads_but_changes_nothing(gateway: RunningGateway) -> None:
    made = gateway.call("POST", "/v1/tokens", {"name": "kitchen tablet", "scope": "read"})

    assert status_of(gateway, "GET", "/v1/home", made["token"]) == 200
    assert status_of(gateway, "POST", "/v1/pairing/codes", made["token"]) == 403
    assert status_of(gateway, "GET", "/v1/tokens", made["token"]) == 403
    listed = {t["id"]: t for t in gateway.call("GET", "/v1/tokens")}
    assert listed[made["id"]]["name"] == "kitchen tablet"
    assert listed[made["id"]]["scope"] == "read"
    assert listed[made["id"]]["last_used"] is not None
    assert "token" not in listed[made["id"]]


def test_a_revoked_token_is_refused_at_once(gateway: RunningGateway) -> None:
    made = gateway.call("POST", "/v1/tokens", {"name": "guest phone"})
    assert status_of(gateway, "GET", "/v1/home", made["token"]) == 200

    gateway.call("DELETE", f"/v1/tokens/{made['id']}")

    assert status_of(gateway, "GET", "/v1/home", made["token"]) == 401


def test_the_last_full_token_cannot_be_revoked(tmp_path: Path) -> None:
    with RunningGateway(gateway_settings(tmp_path)) as gw:
        first = gw.call("GET", "/v1/tokens")[0]

        assert status_of(gw, "DELETE", f"/v1/tokens/{first['id']}", gw.token or "") == 409
        assert status_of(gw, "GET", "/v1/home", gw.token or "") == 200


def test_the_cli_lists_creates_and_revokes_tokens(gateway: RunningGateway) -> None:
    base = ["--gateway", gateway.url, "--token", gateway.token or ""]
    made = galaxy("tokens", "create", "wall display", "--read-only", *base)
    token_id = made.stdout.split()[1]

    listed = galaxy("tokens", "list", *base)
    revoked = galaxy("tokens", "revoke", token_id, *base)

    assert made.returncode == 0 and "(read)" in made.stdout and "gh_" in made.stdout
    assert "wall display" in listed.stdout
    assert revoked.returncode == 0 and "wall display" in revoked.stdout


def test_a_backup_restores_the_home_only_with_the_owner_s_token(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    code = gateway.call("POST", "/v1/pairing/codes")["code"]
    pair(gateway.url, tmp_path / "worker", "porch-pi", code)
    reader = gateway.call("POST", "/v1/tokens", {"name": "reader", "scope": "read"})["token"]
    backup_file, restored = tmp_path / "home.backup", tmp_path / "restored"
    owner = gateway.token or ""

    assert status_of(gateway, "GET", "/v1/backup", reader) == 403
    made = galaxy("backup", "--out", str(backup_file), "--gateway", gateway.url, "--token", owner)
    wrong = galaxy("restore", str(backup_file), "--token", reader, "--data-dir", str(restored))
    right = galaxy("restore", str(backup_file), "--token", owner, "--data-dir", str(restored))

    assert made.returncode == 0, made.stderr
    assert owner.encode() not in backup_file.read_bytes()
    assert b"BEGIN" not in backup_file.read_bytes()  # the CA's key is not there in the clear
    assert wrong.returncode == 2 and "refused" in wrong.stderr
    assert right.returncode == 0, right.stderr
    settings = gateway_settings(tmp_path, data_dir=restored)
    with RunningGateway(settings) as again:
        again.token = owner
        devices = {d["name"] for d in again.call("GET", "/v1/devices") if d["paired"]}
        assert again.state.ca.fingerprint == gateway.state.ca.fingerprint
    assert "porch-pi" in devices
