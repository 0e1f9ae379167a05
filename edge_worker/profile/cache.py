"""Measured layer costs kept on disk, so a worker that restarts does not profile again.

A device's costs for a model's shapes change only when the device does: another CPU, another
torch, another thread count, another CPU quota. `ProfileCache` keeps each `Profile` request's
`LayerCosts` in `<data dir>/profiles.json` under the request's key, with a fingerprint of the
machine (`machine_fingerprint`) and the time measured. An entry whose fingerprint differs, or
older than `MAX_AGE_S`, is measured again; a `fresh` request always is. A file that cannot be
read (damaged, another version) is ignored and rewritten: the cache only saves time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from edge_worker.profile.compute import LayerCosts

log = logging.getLogger(__name__)
MAX_AGE_S = 7 * 24 * 3600.0  # a week: drivers, thermals and background load drift
MAX_ENTRIES = 32  # models x sequence lengths a device is asked about; the oldest go first


def machine_fingerprint(threads: int) -> str:
    """What the measured speed depends on: the CPU model and count, the CPU quota of this
    process's cgroup, torch's version and the compute thread count."""
    parts = [
        platform.machine(),
        _cpu_model(),
        str(os.cpu_count()),
        _cpu_quota(),
        torch.__version__,
        str(threads),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_quota() -> str:
    """cgroup v2's `cpu.max` of the calling thread ("max 100000" when unlimited), or ""."""
    try:
        group = Path("/proc/thread-self/cgroup").read_text().strip().split("::", 1)[-1]
        return (Path("/sys/fs/cgroup") / group.lstrip("/") / "cpu.max").read_text().strip()
    except (OSError, IndexError):
        return ""


class ProfileCache:
    """Layer costs by request key, for one machine fingerprint, persisted in `path`."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path, self.fingerprint = path, fingerprint
        self._entries: dict[str, dict[str, Any]] = self._load()

    def get(self, key: str) -> LayerCosts | None:
        """The costs measured for `key` on this machine within `MAX_AGE_S`, or None."""
        entry = self._entries.get(key)
        if entry is None or entry.get("machine") != self.fingerprint:
            return None
        if time.time() - float(entry.get("at", 0)) > MAX_AGE_S:
            return None
        try:
            return _costs(entry["costs"])
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, key: str, costs: LayerCosts) -> None:
        """Keep `costs` for `key` (in memory and on disk; a disk error is only logged)."""
        self._entries[key] = {
            "machine": self.fingerprint,
            "at": time.time(),
            "costs": asdict(costs),
        }
        while len(self._entries) > MAX_ENTRIES:
            oldest = min(self._entries, key=lambda k: float(self._entries[k].get("at", 0)))
            del self._entries[oldest]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._entries))
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("could not save measured layer costs to %s: %s", self.path, exc)

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the saved layer costs in %s: %s", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}


def _costs(raw: dict[str, Any]) -> LayerCosts:
    return LayerCosts(
        proj=[(int(m), int(n), float(g)) for m, n, g in raw["proj"]],
        mlp=[(int(m), int(n), float(g)) for m, n, g in raw["mlp"]],
        attention=[(int(e), float(g)) for e, g in raw["attention"]],
        connective_ns=float(raw["connective_ns"]),
        decode=[(int(p), float(ms)) for p, ms in raw["decode"]],
    )
