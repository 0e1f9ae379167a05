"""The owner's commands: pairing codes, API tokens, backup and restore (`galaxy pair`,
`galaxy tokens ...`, `galaxy backup`, `galaxy restore`). All but `restore` talk to a running
gateway's API with a full token (`--token` or `GALAXY_TOKEN`); `restore` writes a stopped
gateway's data directory from a backup file, and needs the token it was made with."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

Token = Annotated[str, typer.Option(envvar="GALAXY_TOKEN", help="a full API token")]
Gateway = Annotated[str, typer.Option(help="gateway API URL")]
DEFAULT_GATEWAY = "http://127.0.0.1:8000"

tokens_app = typer.Typer(help="List, create and revoke API tokens.", no_args_is_help=True)


def _api(method: str, gateway: str, path: str, token: str, body: Any = None) -> bytes:
    req = urllib.request.Request(
        gateway.rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
    )
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        typer.echo(f"error: {gateway} answered {exc.code}: {detail}", err=True)
        raise typer.Exit(2) from None
    except (urllib.error.URLError, OSError) as exc:
        typer.echo(f"error: cannot reach {gateway}: {exc}", err=True)
        raise typer.Exit(2) from None


def pair(token: Token, gateway: Gateway = DEFAULT_GATEWAY) -> None:
    """Show a one-time pairing code: enter it on a new worker with --pairing-code."""
    answer = json.loads(_api("POST", gateway, "/v1/pairing/codes", token))
    typer.echo(f"pairing code: {answer['code']} (valid {answer['expires_in_s']:.0f} s)")
    typer.echo(f"home CA fingerprint: {answer['ca_fingerprint']}")
    typer.echo(
        f"on the new device: galaxy worker --gateway {gateway} --pairing-code {answer['code']}"
    )


def _when(t: float | None) -> str:
    return "never" if t is None else datetime.fromtimestamp(t).isoformat(timespec="minutes")


@tokens_app.command("list")
def list_tokens(token: Token, gateway: Gateway = DEFAULT_GATEWAY) -> None:
    """Every token: id, name, scope, created, last used (never the token itself)."""
    for t in json.loads(_api("GET", gateway, "/v1/tokens", token)):
        state = "revoked" if t["revoked"] else t["scope"]
        typer.echo(
            f"{t['id']:>4}  {t['name']:<24} {state:<8} created {_when(t['created'])}, "
            f"last used {_when(t['last_used'])}"
        )


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Argument(help="what the token is for: 'kitchen tablet'")],
    token: Token,
    read_only: Annotated[bool, typer.Option("--read-only", help="may only read (GET)")] = False,
    gateway: Gateway = DEFAULT_GATEWAY,
) -> None:
    """Make a token; it is shown once."""
    body = {"name": name, "scope": "read" if read_only else "full"}
    made = json.loads(_api("POST", gateway, "/v1/tokens", token, body))
    typer.echo(f"token {made['id']} ({made['scope']}): {made['token']}  (shown once)")


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[int, typer.Argument(help="the id `galaxy tokens list` shows")],
    token: Token,
    gateway: Gateway = DEFAULT_GATEWAY,
) -> None:
    """Revoke a token at once."""
    gone = json.loads(_api("DELETE", gateway, f"/v1/tokens/{token_id}", token))
    typer.echo(f"revoked token {gone['id']} ({gone['name']})")


def backup(
    out: Annotated[Path, typer.Option(help="where to write the backup file")],
    token: Token,
    gateway: Gateway = DEFAULT_GATEWAY,
) -> None:
    """Save the gateway's state (home CA, devices, tokens, the home) encrypted with TOKEN."""
    blob = _api("GET", gateway, "/v1/backup", token)
    out.write_bytes(blob)
    out.chmod(0o600)
    typer.echo(f"wrote {out} ({len(blob) / 1024:.0f} KB), encrypted with your token")


def restore(
    backup_file: Annotated[Path, typer.Argument(help="a file `galaxy backup` wrote")],
    token: Token,
    data_dir: Annotated[Path, typer.Option(help="the stopped gateway's data directory")],
    force: Annotated[bool, typer.Option(help="overwrite a data directory that has files")] = False,
) -> None:
    """Restore a gateway's state from a backup (stop the gateway first)."""
    from assistant.errors import GatewayError
    from assistant.trust.backup import restore_backup

    try:
        written = restore_backup(
            backup_file.read_bytes(), token, data_dir.expanduser(), force=force
        )
    except (GatewayError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"restored {len(written)} files into {data_dir}; start the gateway with it")


def register(app: typer.Typer) -> None:
    app.command()(pair)
    app.add_typer(tokens_app, name="tokens")
    app.command()(backup)
    app.command()(restore)
