"""The home's state in SQLite (`home.sqlite3` in the gateway's data dir): each device's current
state, the log of every change with the request that made it, and the timers.

One connection guarded by a lock, WAL journal, as `assistant/store.py` does: writes are small.
On open the stored state is reconciled with the home file: devices new to the file start at the
file's state, devices gone from it are dropped, attributes a domain gained take the file's value;
a device that is in both keeps its stored state (the file only seeds it).

Times are wall-clock seconds (`time.time()`): timers must keep their end across a restart.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from assistant.home.model import Change, Home

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS device_state (
    device TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, device TEXT NOT NULL, attribute TEXT NOT NULL,
    old TEXT, new TEXT, request_id TEXT NOT NULL, source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_device ON changes (device, id);
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, duration_s REAL NOT NULL,
    started REAL NOT NULL, ends REAL NOT NULL, status TEXT NOT NULL, settled REAL,
    request_id TEXT NOT NULL
);
"""

TimerStatus = Literal["running", "cancelled", "finished"]


@dataclass(frozen=True)
class Timer:
    id: int
    name: str | None
    duration_s: float
    started: float  # wall clock, seconds
    ends: float
    status: TimerStatus
    settled: float | None  # when it was cancelled or finished

    def remaining_s(self, now: float) -> float:
        return max(0.0, self.ends - now) if self.status == "running" else 0.0

    def to_dict(self, now: float) -> dict[str, Any]:
        return {**asdict(self), "remaining_s": round(self.remaining_s(now), 1)}


@dataclass(frozen=True)
class LoggedChange:
    id: int
    time: float
    device: str
    attribute: str
    old: Any
    new: Any
    request_id: str
    source: str


class HomeState:
    """Current state per device, the change log and the timers of one home."""

    def __init__(self, path: Path, home: Home) -> None:
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._states: dict[str, dict[str, Any]] = {}
        self._reconcile(home)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _reconcile(self, home: Home) -> None:
        stamp = time.time()
        with self._lock:
            stored = {
                r[0]: json.loads(r[1])
                for r in self._db.execute("SELECT device, state FROM device_state")
            }
            self._db.execute("BEGIN")
            for gone in set(stored) - {d.id for d in home.devices}:
                self._db.execute("DELETE FROM device_state WHERE device = ?", (gone,))
                log.info("home: %s is no longer in the home file; its state is dropped", gone)
            for device in home.devices:
                if device.id in stored:
                    # attributes the domain no longer has go; ones it gained take the file's
                    old = stored[device.id]
                    state = {k: old.get(k, v) for k, v in device.state.items()}
                else:
                    state = dict(device.state)
                self._states[device.id] = state
                if state != stored.get(device.id):
                    self._db.execute(
                        "INSERT OR REPLACE INTO device_state VALUES (?, ?, ?)",
                        (device.id, json.dumps(state), stamp),
                    )
            self._db.execute("COMMIT")

    # ----- device state -----

    def get(self, device_id: str) -> dict[str, Any]:
        """A copy of one device's current state (KeyError: not in the home)."""
        return dict(self._states[device_id])

    def all(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._states.items()}

    def write(
        self,
        states: dict[str, dict[str, Any]],
        changes: Iterable[Change],
        request_id: str,
        source: str,
        now: float,
    ) -> None:
        """New whole states of some devices and the changes that made them, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for device_id, state in states.items():
                    self._db.execute(
                        "UPDATE device_state SET state = ?, updated = ? WHERE device = ?",
                        (json.dumps(state), now, device_id),
                    )
                self._db.executemany(
                    "INSERT INTO changes (time, device, attribute, old, new, request_id, source) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            now,
                            c.device,
                            c.attribute,
                            json.dumps(c.old),
                            json.dumps(c.new),
                            request_id,
                            source,
                        )
                        for c in changes
                    ],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            for device_id, state in states.items():
                self._states[device_id] = dict(state)

    def changes(self, limit: int = 100, device: str | None = None) -> list[LoggedChange]:
        """The most recent changes first."""
        sql = "SELECT id, time, device, attribute, old, new, request_id, source FROM changes"
        args: tuple[Any, ...] = ()
        if device is not None:
            sql += " WHERE device = ?"
            args = (device,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            LoggedChange(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6], r[7])
            for r in rows
        ]

    # ----- timers -----

    def add_timer(self, name: str | None, duration_s: float, now: float, request_id: str) -> Timer:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO timers (name, duration_s, started, ends, status, request_id) "
                "VALUES (?, ?, ?, ?, 'running', ?)",
                (name, duration_s, now, now + duration_s, request_id),
            )
            timer_id = int(cur.lastrowid or 0)
        return Timer(timer_id, name, duration_s, now, now + duration_s, "running", None)

    def timers(self, *, running_only: bool = True, limit: int = 50) -> list[Timer]:
        """Timers, the earliest to end first (running only, or also the recently settled)."""
        where = "WHERE status = 'running'" if running_only else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, duration_s, started, ends, status, settled FROM timers "
                f"{where} ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return sorted((Timer(*r) for r in rows), key=lambda t: (t.status != "running", t.ends))

    def timer(self, timer_id: int) -> Timer | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, duration_s, started, ends, status, settled FROM timers "
                "WHERE id = ?",
                (timer_id,),
            ).fetchone()
        return Timer(*row) if row else None

    def settle(self, timer_id: int, status: TimerStatus, now: float) -> Timer | None:
        """Mark a running timer cancelled or finished; None if it was not running (so two
        paths that race to finish one timer report it once)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE timers SET status = ?, settled = ? WHERE id = ? AND status = 'running'",
                (status, now, timer_id),
            )
            changed = cur.rowcount > 0
        return self.timer(timer_id) if changed else None

    def finish_due(self, now: float) -> list[Timer]:
        """Mark every running timer whose end has passed as finished; returns those."""
        done = []
        for t in self.timers():
            if t.ends <= now and (finished := self.settle(t.id, "finished", t.ends)) is not None:
                done.append(finished)
        return done
