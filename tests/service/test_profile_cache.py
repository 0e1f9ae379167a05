"""Measured layer costs survive a worker restart on the same machine, and only there."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge_worker.profile import cache as C
from edge_worker.profile.compute import LayerCosts
from edge_worker.service.worker import Worker

COSTS = LayerCosts(
    proj=[(64, 14, 12.5)],
    mlp=[(64, 4864, 20.0), (8, 1600, 9.0)],
    attention=[(14 * 64 * 64, 3.0)],
    connective_ns=0.7,
    decode=[(1_000_000, 1.5)],
)


def test_costs_come_back_after_a_restart(tmp_path: Path) -> None:
    C.ProfileCache(tmp_path / "profiles.json", "m1").put("qwen@64", COSTS)

    again = C.ProfileCache(tmp_path / "profiles.json", "m1")

    assert again.get("qwen@64") == COSTS
    assert again.get("qwen@128") is None


def test_another_machine_or_old_costs_are_measured_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    C.ProfileCache(tmp_path / "profiles.json", "m1").put("qwen@64", COSTS)

    assert C.ProfileCache(tmp_path / "profiles.json", "m2").get("qwen@64") is None
    later = time.time() + C.MAX_AGE_S + 1
    monkeypatch.setattr(C.time, "time", lambda: later)
    assert C.ProfileCache(tmp_path / "profiles.json", "m1").get("qwen@64") is None


@pytest.mark.parametrize(
    "content", ["{not json", "[1, 2]", json.dumps({"k": {"machine": "m1", "at": 0, "costs": 3}})]
)
def test_a_damaged_file_is_ignored_and_replaced(tmp_path: Path, content: str) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(content)
    cache = C.ProfileCache(path, "m1")

    assert cache.get("k") is None
    cache.put("k", COSTS)
    assert C.ProfileCache(path, "m1").get("k") == COSTS


def test_the_oldest_entries_make_room(tmp_path: Path) -> None:
    cache = C.ProfileCache(tmp_path / "profiles.json", "m1")
    for i in range(C.MAX_ENTRIES + 2):
        cache.put(f"k{i}", COSTS)

    kept = C.ProfileCache(tmp_path / "profiles.json", "m1")
    assert kept.get("k0") is None and kept.get(f"k{C.MAX_ENTRIES + 1}") == COSTS


def test_the_fingerprint_follows_the_thread_count() -> None:
    assert C.machine_fingerprint(1) == C.machine_fingerprint(1)
    assert C.machine_fingerprint(1) != C.machine_fingerprint(2)


def test_a_worker_reads_the_costs_its_last_run_measured(tmp_path: Path) -> None:
    first = Worker("pi", tmp_path)
    first.profiles.put("qwen@64", COSTS)
    first.compute.shutdown()

    second = Worker("pi", tmp_path)
    try:
        assert second.profiles.get("qwen@64") == COSTS
    finally:
        second.compute.shutdown()
