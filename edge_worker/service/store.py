"""On-disk cache of received weight shards, keyed by content hash.

A restarted worker tells the coordinator which shards it holds (`Hello.cached_shards`) and is
not sent them again. Files are safetensors, written to a temporary name and renamed, so a crash
mid-write never leaves a corrupt entry under a valid hash. The cache is bounded both in shards
(`keep`) and in bytes (`max_mb`: a home device's disk is small, and a whole 0.5B model, which
standby plans stage on every worker, is 2 GB in fp32); the least recently used go first,
never the one just saved.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor

log = logging.getLogger(__name__)


class ShardStore:
    def __init__(self, root: Path, keep: int = 8, max_mb: float = 4096.0) -> None:
        self.root, self.keep, self.max_bytes = root, keep, max_mb * 2**20
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        if not digest.isalnum():
            raise ValueError(f"bad shard hash {digest!r}")
        return self.root / f"{digest}.safetensors"

    def hashes(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.safetensors"))

    def has(self, digest: str) -> bool:
        return self._path(digest).exists()

    def save(self, digest: str, tensors: dict[str, Tensor], meta: dict[str, object]) -> None:
        path = self._path(digest)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
        tmp.replace(path)
        _used(path)
        self._evict()

    def load(self, digest: str) -> tuple[dict[str, Tensor], dict[str, object]]:
        path = self._path(digest)
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
        _used(path)
        return tensors, meta

    def _evict(self) -> None:
        stats = sorted(
            ((p, p.stat()) for p in self.root.glob("*.safetensors")),
            key=lambda ps: ps[1].st_mtime_ns,
        )
        count, total = len(stats), sum(st.st_size for _, st in stats)
        for old, st in stats[:-1]:  # oldest first; the newest always stays
            if count <= self.keep and total <= self.max_bytes:
                break
            log.info("evicting cached shard %s", old.stem)
            count, total = count - 1, total - st.st_size
            old.unlink(missing_ok=True)


def _used(path: Path) -> None:
    """Mark `path` most recently used. The time is set, not touched: the kernel stamps files with
    a clock that ticks every few milliseconds, too coarse to order shards saved back to back."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))
