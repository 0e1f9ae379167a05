"""SQLite state under the gateway's data dir: paired devices, API tokens, pairing requests and
the request log. One connection guarded by a lock: writes are small and rare."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY, serial TEXT NOT NULL, paired_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0, last_seen REAL, prev_serial TEXT
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY, hash TEXT NOT NULL, label TEXT NOT NULL, created REAL NOT NULL,
    scope TEXT NOT NULL DEFAULT 'full', last_used REAL, revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pairing_requests (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, csr TEXT NOT NULL, source TEXT NOT NULL,
    created REAL NOT NULL, status TEXT NOT NULL, cert TEXT
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, model TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL, timings TEXT, plan TEXT, error TEXT
);
"""


@dataclass(frozen=True)
class Device:
    name: str
    serial: str
    paired_at: float
    revoked: bool
    last_seen: float | None


TOKEN_COLUMNS = "id, label, scope, created, last_used, revoked"


@dataclass(frozen=True)
class ApiToken:
    """An API token as the gateway keeps it: never the token itself, only its hash's row."""

    id: int
    label: str
    scope: str  # "full" (the owner) or "read" (a dashboard on the wall: GET only)
    created: float
    last_used: float | None
    revoked: bool


@dataclass(frozen=True)
class PairingRequest:
    id: str
    name: str
    csr: str
    source: str
    created: float
    status: str  # pending | approved | denied
    cert: str | None


class Store:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._lock = threading.Lock()
        # Called after each `log_request` with the record as `requests()` returns it (the
        # metrics read it); a listener that raises is logged, the request goes on.
        self.on_request: list[Callable[[dict[str, Any]], None]] = []

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        """Columns added since a database was made: the tokens' scope, use and revocation; a
        device's previous certificate (valid until its renewed one is first seen)."""
        for table, column, kind in (
            ("tokens", "scope", "TEXT NOT NULL DEFAULT 'full'"),
            ("tokens", "last_used", "REAL"),
            ("tokens", "revoked", "INTEGER NOT NULL DEFAULT 0"),
            ("devices", "prev_serial", "TEXT"),
        ):
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def backup_to(self, path: Path) -> None:
        """A consistent copy of the database (SQLite's online backup), for `galaxy backup`."""
        target = sqlite3.connect(str(path))
        with self._lock:
            self._db.backup(target)
        target.close()

    def _all(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _do(self, sql: str, *args: object) -> int:
        """Run one statement: an INSERT's new row id, else the number of rows it changed
        (sqlite3's `lastrowid` keeps the last insert's id across UPDATEs: not a change count)."""
        with self._lock:
            cur = self._db.execute(sql, args)
            if sql.lstrip().upper().startswith("INSERT"):
                return int(cur.lastrowid or 0)
            return int(cur.rowcount)

    # ----- devices -----

    def add_device(self, name: str, serial: int) -> None:
        self._do(
            "INSERT OR REPLACE INTO devices (name, serial, paired_at, revoked) VALUES (?, ?, ?, 0)",
            name,
            str(serial),
            time.time(),
        )

    def devices(self) -> list[Device]:
        rows = self._all(
            "SELECT name, serial, paired_at, revoked, last_seen FROM devices ORDER BY name"
        )
        return [Device(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def device(self, name: str) -> Device | None:
        return next((d for d in self.devices() if d.name == name), None)

    def revoke(self, name: str) -> bool:
        return self._do("UPDATE devices SET revoked = 1 WHERE name = ? AND revoked = 0", name) > 0

    def is_trusted(self, name: str, serial: int) -> bool:
        """A paired, unrevoked device presenting the certificate it was issued (or, until the
        renewed one is first seen, the one before it)."""
        rows = self._all("SELECT revoked, serial, prev_serial FROM devices WHERE name = ?", name)
        return bool(rows) and not rows[0][0] and str(serial) in (rows[0][1], rows[0][2])

    def serials(self, name: str) -> tuple[str, str | None] | None:
        """(current, previous) certificate serials of a device, as decimal strings."""
        rows = self._all("SELECT serial, prev_serial FROM devices WHERE name = ?", name)
        return (rows[0][0], rows[0][1]) if rows else None

    def renewed(self, name: str, serial: int) -> None:
        """A new certificate for `name`: the current one stays valid until the new is seen."""
        self._do(
            "UPDATE devices SET prev_serial = serial, serial = ? WHERE name = ?", str(serial), name
        )

    def seen(self, name: str, serial: int | None = None) -> None:
        """The device connected (with its renewed certificate: the old one is retired)."""
        self._do("UPDATE devices SET last_seen = ? WHERE name = ?", time.time(), name)
        if serial is not None:
            self._do(
                "UPDATE devices SET prev_serial = NULL WHERE name = ? AND serial = ?",
                name,
                str(serial),
            )

    # ----- API tokens (only hashes are stored) -----

    def add_token(self, token_hash: str, label: str, scope: str = "full") -> int:
        return self._do(
            "INSERT INTO tokens (hash, label, created, scope) VALUES (?, ?, ?, ?)",
            token_hash,
            label,
            time.time(),
            scope,
        )

    def token_hashes(self) -> list[str]:
        """The stored hashes of the tokens in force."""
        return [r[0] for r in self._all("SELECT hash FROM tokens WHERE revoked = 0")]

    def find_token(self, token_hash: str) -> ApiToken | None:
        rows = self._all(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?", token_hash)
        return ApiToken(*rows[0]) if rows else None

    def tokens(self) -> list[ApiToken]:
        return [ApiToken(*r) for r in self._all(f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id")]

    def token_used(self, token_id: int, when: float) -> None:
        self._do("UPDATE tokens SET last_used = ? WHERE id = ?", when, token_id)

    def revoke_token(self, token_id: int) -> bool:
        return self._do("UPDATE tokens SET revoked = 1 WHERE id = ? AND revoked = 0", token_id) > 0

    # ----- pairing requests awaiting the owner's approval -----

    def add_pairing_request(self, req: PairingRequest) -> None:
        self._do(
            "INSERT INTO pairing_requests VALUES (?, ?, ?, ?, ?, ?, ?)",
            req.id,
            req.name,
            req.csr,
            req.source,
            req.created,
            req.status,
            req.cert,
        )

    def pairing_request(self, req_id: str) -> PairingRequest | None:
        rows = self._all("SELECT * FROM pairing_requests WHERE id = ?", req_id)
        return PairingRequest(*rows[0]) if rows else None

    def pairing_requests(self, status: str = "pending") -> list[PairingRequest]:
        rows = self._all("SELECT * FROM pairing_requests WHERE status = ? ORDER BY created", status)
        return [PairingRequest(*r) for r in rows]

    def settle_pairing_request(self, req_id: str, status: str, cert: str | None) -> None:
        self._do(
            "UPDATE pairing_requests SET status = ?, cert = ? WHERE id = ?", status, cert, req_id
        )

    # ----- request log -----

    def log_request(
        self,
        kind: str,
        model: str,
        status: str,
        timings: dict[str, Any],
        plan: dict[str, Any] | None,
        error: str | None = None,
    ) -> int:
        created = time.time()
        row = self._do(
            "INSERT INTO requests (kind, model, created, status, timings, plan, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            kind,
            model,
            created,
            status,
            json.dumps(timings),
            json.dumps(plan),
            error,
        )
        record = {
            "id": row,
            "kind": kind,
            "model": model,
            "created": created,
            "status": status,
            "timings": timings,
            "plan": plan,
            "error": error,
        }
        for listener in self.on_request:
            try:
                listener(record)
            except Exception:
                log.exception("a request-log listener failed on request %s", row)
        return row

    def requests(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT id, kind, model, created, status, timings, plan, error FROM requests "
            "ORDER BY id DESC LIMIT ?",
            limit,
        )
        return [
            {
                "id": r[0],
                "kind": r[1],
                "model": r[2],
                "created": r[3],
                "status": r[4],
                "timings": json.loads(r[5] or "{}"),
                "plan": json.loads(r[6] or "null"),
                "error": r[7],
            }
            for r in rows
        ]
