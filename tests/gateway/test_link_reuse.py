"""Links are probed when a worker joins, not when one leaves: a device's figure is its own, so a
failover re-plans on the survivors' measured links at once, without a probe ring."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from assistant.cluster.coordinator import Coordinator
from assistant.cluster.linkwatch import measure_links
from assistant.cluster.manager import ClusterManager


async def test_links_are_probed_when_a_worker_joins_not_when_one_leaves() -> None:
    coordinator = Coordinator()
    probed: list[list[str]] = []

    async def probe_links(sessions: list[Any], nbytes: int = 0) -> dict[str, tuple[float, float]]:
        probed.append([s.name for s in sessions])
        return {s.name: (100.0 * len(probed), 0.5) for s in sessions}

    coordinator.probe_links = probe_links  # type: ignore[method-assign]
    coordinator.sessions = {n: SimpleNamespace(name=n, alive=True) for n in "abc"}  # type: ignore[misc]
    manager = ClusterManager(coordinator)

    assert (await measure_links(manager, ["a", "b", "c"]))["a"] == (100.0, 0.5)
    assert (await measure_links(manager, ["a", "b"]))["a"] == (100.0, 0.5)  # c left
    manager.changed("c", True)  # c is back, maybe on another network
    assert (await measure_links(manager, ["a", "b", "c"]))["c"] == (200.0, 0.5)
    assert probed == [["a", "b", "c"], ["a", "b", "c"]]
