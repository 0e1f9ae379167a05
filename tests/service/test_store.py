"""The worker's on-disk shard cache: bounded in shards and in bytes, least recently used first."""

from __future__ import annotations

from pathlib import Path

import torch

from edge_worker.service.store import ShardStore


def shard(mb: float) -> dict[str, torch.Tensor]:
    return {"w": torch.zeros(int(mb * 2**20) // 4)}


def test_the_least_recently_used_shards_go_when_the_bytes_run_over(tmp_path: Path) -> None:
    store = ShardStore(tmp_path, keep=10, max_mb=2.5)
    store.save("a", shard(1), {})
    store.save("b", shard(1), {})
    store.load("a")  # a used again: b is now the oldest
    store.save("c", shard(1), {})

    assert store.hashes() == ["a", "c"]
    tensors, meta = store.load("c")
    assert tensors["w"].numel() == 2**18 and meta == {}


def test_the_count_bounds_it_too_and_a_shard_over_the_budget_is_kept_alone(tmp_path: Path) -> None:
    store = ShardStore(tmp_path, keep=2, max_mb=100)
    for name in "abc":
        store.save(name, shard(0.1), {"name": name})
    assert store.hashes() == ["b", "c"]

    store = ShardStore(tmp_path, keep=2, max_mb=0.5)
    store.save("d", shard(1), {})
    assert store.hashes() == ["d"]
