"""Re-planning in the background, after the home changed.

Every change (a worker joined or left, a link moved, a device was profiled again) bumps the
generation, so a plan made under an older one is replaced. Half a second later (a burst of
changes re-plans once) one task runs the manager's re-plan, beside the requests, which keep
their plans until the new ones are up. A change that arrives meanwhile makes it go again.
`status` says whether a re-plan is pending or running and how the last one went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Replanner:
    def __init__(
        self, replan: Callable[[], Awaitable[dict[str, Any]]], delay_s: float = 0.5
    ) -> None:
        """`replan()` re-makes whatever is stale and says what it did."""
        self._replan, self.delay_s = replan, delay_s
        self.status: dict[str, Any] = {"state": "idle", "runs": 0, "last": None}
        self.generation = 0
        self._reasons: list[str] = []
        self._due = 0.0
        self._task: asyncio.Task[None] | None = None

    def stale(self, reason: str, *, schedule: bool = True) -> bool:
        """Plans made so far are out of date; re-plan `delay_s` from now (a change that arrives
        meanwhile pushes it back) when `schedule` and an event loop is running (returns
        whether it will)."""
        self.generation += 1
        if not schedule:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._reasons.append(reason)
        self._due = loop.time() + self.delay_s
        if self._task is None or self._task.done():
            self.status["state"] = "pending"
            self._task = loop.create_task(self._loop(), name="replan")
            self._task.add_done_callback(self._ended)
        return True

    async def close(self) -> None:
        """Cancel a pending or running re-plan (gateway shut-down)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.status["state"] = "idle"

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while (wait := self._due - loop.time()) > 0:
                await asyncio.sleep(wait)
            self.status["state"] = "running"
            generation = self.generation
            reason = "; ".join(dict.fromkeys(self._reasons))
            self._reasons.clear()
            started = time.monotonic()
            models = await self._replan()
            self.status["runs"] += 1
            self.status["last"] = {
                "at": _now(),
                "reason": reason,
                "took_ms": round((time.monotonic() - started) * 1e3, 1),
                "models": models,
            }
            if generation == self.generation:
                self.status["state"] = "idle"
                return
            # Another change came in while re-planning: go again (its delay is already set).

    def _ended(self, task: asyncio.Task[None]) -> None:
        """Done callback: retrieve what the task raised, so no error goes unseen."""
        if task.cancelled() or (exc := task.exception()) is None:
            return
        log.error("background re-plan crashed; next request re-plans", exc_info=exc)
        if self._task is task:
            self.status["state"] = "idle"
            self.status["last"] = {"at": _now(), "error": f"{type(exc).__name__}: {exc}"[:200]}
