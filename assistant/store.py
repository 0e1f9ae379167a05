"""SQLite state under the gateway's data dir: paired devices, API tokens, pairing requests and
the request log. One connection guarded by a lock: writes are small and rare."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY, serial TEXT NOT NULL, paired_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0, last_seen REAL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY, hash TEXT NOT NULL, label TEXT NOT NULL, created REAL NOT NULL
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
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _all(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _do(self, sql: str, *args: object) -> int:
        with self._lock:
            cur = self._db.execute(sql, args)
            return int(cur.lastrowid or cur.rowcount)

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
        """A paired, unrevoked device presenting the certificate it was issued."""
        d = self.device(name)
        return d is not None and not d.revoked and d.serial == str(serial)

    def seen(self, name: str) -> None:
        self._do("UPDATE devices SET last_seen = ? WHERE name = ?", time.time(), name)

    # ----- API tokens (only hashes are stored) -----

    def add_token(self, token_hash: str, label: str) -> None:
        self._do(
            "INSERT INTO tokens (hash, label, created) VALUES (?, ?, ?)",
            token_hash,
            label,
            time.time(),
        )

    def token_hashes(self) -> list[str]:
        return [r[0] for r in self._all("SELECT hash FROM tokens")]

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
        return self._do(
            "INSERT INTO requests (kind, model, created, status, timings, plan, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            kind,
            model,
            time.time(),
            status,
            json.dumps(timings),
            json.dumps(plan),
            error,
        )

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
