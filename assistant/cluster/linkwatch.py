"""Noticing a link that slowed while the home is busy.

The links are measured with a probe ring (`Coordinator.probe_links`) when the set of online
workers changes, and again every `link_check_s` (`main._watch_links`), between two steps of the
requests in flight (`recheck_links`); a device whose link moved by more than 30%
makes the plans stale and the planner re-plans with the new figure, which moves work off a
link that slowed.

A link that degrades mid-run should not wait for the next periodic check. Every request's
trace (`gate.StepRunner.trace`) says how long the ring's devices waited on each other and how
many bytes they sent. `RingDrift` keeps, per deployed plan, the best ring wait per megabyte
seen on it (its first requests, before anything changed); when the median of the last `window`
requests is `factor` times that (or of `floor_ms_per_mb`, whichever is larger), it sets
`suspect`, and the link watcher checks the links at once. A false alarm (a device busy with
something else also makes its peers wait) costs one probe: the plans are re-made only when the
probe finds a link that really changed. Requests that moved fewer than `min_bytes` (a few
decode steps) say nothing about bandwidth and are not counted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.cluster.manager import ClusterManager

log = logging.getLogger(__name__)

KEEP_PLANS = 16  # per-plan figures kept (the current plans and a few before them)


class RingDrift:
    def __init__(
        self,
        factor: float = 4.0,
        window: int = 3,
        min_bytes: int = 256 * 1024,
        floor_ms_per_mb: float = 20.0,
        cooldown_s: float = 30.0,
    ) -> None:
        self.factor, self.window, self.min_bytes = factor, window, min_bytes
        self.floor_ms_per_mb, self.cooldown_s = floor_ms_per_mb, cooldown_s
        self.suspect = asyncio.Event()
        self.alarms = 0
        self._best: OrderedDict[str, float] = OrderedDict()
        self._recent: dict[str, deque[float]] = {}
        self._last_alarm = -math.inf

    @staticmethod
    def wait_per_mb(trace: list[dict[str, Any]]) -> tuple[float, int]:
        """(ms the ring's devices waited per MB they sent, bytes sent) over a request's steps."""
        devices = [d for step in trace for d in step.get("devices", {}).values()]
        sent = sum(int(d.get("sent", 0)) for d in devices)
        wait = sum(float(d.get("wait_ms", 0.0)) for d in devices)
        return (wait / (sent / 2**20) if sent else 0.0), sent

    def observe(self, plan_id: str, trace: list[dict[str, Any]]) -> bool:
        """Record one request that ran on `plan_id`; True (and `suspect` set) when the ring
        has become `factor` times slower per byte than the best seen on this plan."""
        ms_per_mb, sent = self.wait_per_mb(trace)
        if sent < self.min_bytes:
            return False
        best = min(self._best.pop(plan_id, math.inf), ms_per_mb)
        self._best[plan_id] = best
        while len(self._best) > KEEP_PLANS:
            self._recent.pop(self._best.popitem(last=False)[0], None)
        recent = self._recent.setdefault(plan_id, deque(maxlen=self.window))
        recent.append(ms_per_mb)
        if len(recent) < self.window:
            return False
        if statistics.median(recent) < self.factor * max(best, self.floor_ms_per_mb):
            return False
        now = time.monotonic()
        if now - self._last_alarm < self.cooldown_s:
            return False
        self._last_alarm = now
        recent.clear()
        self.alarms += 1
        self.suspect.set()
        return True


async def measure_links(
    manager: ClusterManager, names: list[str]
) -> dict[str, tuple[float, float]]:
    """Per device (Mbit/s, latency ms) over the data plane; measured again when a worker
    joins. A worker that leaves changes no one else's link (each device's figure is its
    own), so a failover re-plans on what was measured, without a probe."""
    if not frozenset(names) <= manager.links_for:
        sessions = [manager.coordinator.sessions[n] for n in names]
        manager.links = await manager.coordinator.probe_links(sessions)
        manager.links_for = frozenset(names)
        log.info("links: %s", {n: f"{b:.0f} Mbit/s" for n, (b, _) in manager.links.items()})
    return manager.links


async def recheck_links(manager: ClusterManager, threshold: float = 0.3) -> bool:
    """Measure the links again, as one step on the cluster (between two steps of the
    requests in flight: a busy home is checked too); re-plan when any device's link changed
    by more than `threshold`. Returns True when plans were dropped. Only the planner uses
    links: with a strategy fixed by the operator nothing is measured."""
    names = manager.online()
    if len(names) < 2 or manager.strategy != "auto":
        return False
    before = dict(manager.links)
    manager.links_for = frozenset()
    after = await measure_links(manager, names)  # (a step on the cluster: Coordinator.quiet)
    changed = [
        n
        for n in names
        if n in before and abs(after[n][0] - before[n][0]) > threshold * before[n][0]
    ]
    if changed:
        log.warning("links changed (%s): plans will be re-made", ", ".join(changed))
        manager.stale(f"link changed: {', '.join(changed)}")
    return bool(changed)
