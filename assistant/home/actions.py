"""`HomeService`: the home's one door. Reads (`snapshot`), changes (`set`, and `handle` for a
recognised intent), timers, the optional Home Assistant bridge, and listeners.

Every change, whatever asked for it, goes through `attributes.apply` (the same validation for
the HTTP API and for a spoken command), then to Home Assistant when the bridge is on (HA first:
if HA does not do it, our state does not claim it happened), then into SQLite with its request
id, then to the listeners. Changes are serialised by one asyncio lock, so a relative request
("a bit brighter") always reads the state the previous request left.

Timers finish two ways, whichever comes first: a background task started by `start()` sleeps
until the next timer's end and marks it finished (so listeners hear it on time), and every read
of the timers marks the overdue ones first (so reads are right even without the task, e.g.
after a restart, before the task has run).

Call it from the event loop (listeners are called there, synchronously); its SQLite writes are
small enough not to need a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.errors import HomeError, InvalidAction, Unavailable, UnknownDevice
from assistant.home import attributes
from assistant.home.bridge import HomeAssistantBridge, from_ha
from assistant.home.events import EventKind, HomeEvent, Listener, Outcome
from assistant.home.loader import empty_home, load_home
from assistant.home.model import Change, Device, Home, Intent
from assistant.home.state import HomeState, Timer

log = logging.getLogger(__name__)

MAX_TIMER_S = 24 * 3600
MAX_TIMER_NAME = 100


class HomeService:
    def __init__(
        self,
        home: Home,
        state: HomeState,
        bridge: HomeAssistantBridge | None = None,
        clock: Callable[[], float] = time.time,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.home = home
        self.state = state
        self.bridge = bridge
        self.clock = clock  # wall-clock seconds: timers and the change log
        self.now = now  # local time: "what time is it"
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._timers_changed = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, settings: Settings, data_dir: Path) -> HomeService:
        """The gateway's home: the home file (or an empty home), its state in
        `data_dir/home.sqlite3`, and the bridge when `ha_url` and `ha_token` are both set."""
        home = (
            load_home(settings.home_file) if settings.home_file else empty_home(settings.home_name)
        )
        bridge = None
        if settings.ha_url and settings.ha_token:
            bridge = HomeAssistantBridge(settings.ha_url, settings.ha_token)
        elif settings.ha_url or settings.ha_token:
            log.warning("Home Assistant bridge is off: set both GALAXY_HA_URL and GALAXY_HA_TOKEN")
        return cls(home, HomeState(data_dir / "home.sqlite3", home), bridge)

    # ----- life cycle -----

    async def start(self) -> None:
        """Read HA's states (a failure is logged: the home works without HA) and start the
        timer task."""
        if self.bridge is not None:
            try:
                await self.refresh("startup")
            except (Unavailable, InvalidAction) as exc:
                log.warning("home: could not read Home Assistant's states at start: %s", exc)
        self._timer_task = asyncio.create_task(self._run_timers(), name="home-timers")

    async def stop(self) -> None:
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
            self._timer_task = None
        self.state.close()

    # ----- listeners -----

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` on every change and timer event (on the event loop; it must
        not block). Returns the function that unsubscribes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, event: HomeEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one broken listener must not stop the home or the others
                log.exception("home: listener %r failed on %s", listener, event.kind)

    # ----- reading -----

    def device(self, device_id: str) -> Device:
        device = self.home.device(device_id)
        if device is None:
            raise UnknownDevice(_no_device(self.home, device_id))
        return device

    def state_of(self, device_id: str) -> dict[str, Any]:
        self.device(device_id)
        return self.state.get(device_id)

    def snapshot(self) -> dict[str, Any]:
        """The home as `GET /v1/home` answers it: areas, devices with their state, timers."""
        states = self.state.all()
        return {
            "name": self.home.name,
            "digest": self.home.digest,
            "areas": [asdict(a) | {"aliases": list(a.aliases)} for a in self.home.areas],
            "devices": [
                {
                    "id": d.id,
                    "name": d.name,
                    "domain": d.domain,
                    "area": d.area,
                    "aliases": list(d.aliases),
                    "device_class": d.device_class,
                    "state": states[d.id],
                }
                for d in self.home.devices
            ],
            "timers": [t.to_dict(self.clock()) for t in self.timers()],
            "home_assistant": None if self.bridge is None else self.bridge.status(),
        }

    # ----- changing -----

    async def set(
        self, device_id: str, values: dict[str, Any], request_id: str, source: str = "api"
    ) -> list[Change]:
        """Change one device's attributes. `UnknownDevice`, `InvalidAction` (the message says
        what is allowed), or `Unavailable` when the bridge is on and HA did not do it."""
        changes, error = await self.apply({device_id: values}, request_id, source)
        if error is not None:
            raise error
        return changes

    async def apply(
        self, requests: dict[str, dict[str, Any]], request_id: str, source: str
    ) -> tuple[list[Change], HomeError | Unavailable | None]:
        """Change several devices: all are validated before any changes (a bad value changes
        nothing). With the bridge, a device HA fails on, and those after it, stay unchanged:
        returns the changes made and that failure."""
        async with self._lock:
            plans: list[tuple[Device, dict[str, Any], dict[str, Any]]] = []
            for device_id, requested in requests.items():
                device = self.device(device_id)
                old = self.state.get(device_id)
                plans.append((device, old, attributes.apply(device, old, requested)))
            done: dict[str, dict[str, Any]] = {}
            changes: list[Change] = []
            error: HomeError | Unavailable | None = None
            for device, old, new in plans:
                delta = [
                    Change(device.id, k, old.get(k), v) for k, v in new.items() if old.get(k) != v
                ]
                if not delta:
                    continue
                if self.bridge is not None:
                    try:
                        await self.bridge.forward(device, old, new)
                    except (Unavailable, InvalidAction) as exc:
                        error = exc
                        break
                done[device.id] = new
                changes += delta
            if done:
                now = self.clock()
                self.state.write(done, changes, request_id, source, now)
                self._emit(HomeEvent("changes", now, request_id, source, tuple(changes)))
            return changes, error

    async def refresh(self, request_id: str) -> list[Change]:
        """Read Home Assistant's states into ours (logged with source "home_assistant");
        `Unavailable` when HA does not answer. No bridge: nothing to read."""
        if self.bridge is None:
            return []
        ha_states = await self.bridge.states()
        async with self._lock:
            done: dict[str, dict[str, Any]] = {}
            changes: list[Change] = []
            for device in self.home.devices:
                theirs = from_ha(device, ha_states.get(device.id, {}))
                if not theirs:
                    continue
                old = self.state.get(device.id)
                try:
                    new = attributes.apply(device, old, theirs, from_file=True)
                except InvalidAction as exc:
                    log.warning("home: Home Assistant's state of %s ignored: %s", device.id, exc)
                    continue
                delta = [
                    Change(device.id, k, old.get(k), v) for k, v in new.items() if old.get(k) != v
                ]
                if delta:
                    done[device.id] = new
                    changes += delta
            if done:
                now = self.clock()
                self.state.write(done, changes, request_id, "home_assistant", now)
                self._emit(HomeEvent("changes", now, request_id, "home_assistant", tuple(changes)))
        log.info(
            "home: read %d states from Home Assistant, %d changes", len(ha_states), len(changes)
        )
        return changes

    async def handle(self, intent: Intent, request_id: str) -> Outcome:
        """Carry out a recognised intent (INTENTS.md). Never raises for what the household
        asked: a refusal or HA's failure is the Outcome's `error`, said in its `speech`."""
        from assistant.home.intents import handle

        return await handle(self, intent, request_id)

    # ----- timers -----

    def timers(self, *, running_only: bool = True) -> list[Timer]:
        self._finish_due()
        return self.state.timers(running_only=running_only)

    def start_timer(
        self, seconds: float, name: str | None, request_id: str, source: str = "api"
    ) -> Timer:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 1:
            raise InvalidAction(f"a timer runs for 1 second to 24 hours, not {seconds!r} seconds")
        if seconds > MAX_TIMER_S:
            raise InvalidAction(
                f"a timer runs for at most 24 hours ({MAX_TIMER_S} s), not {seconds:g} seconds"
            )
        if name is not None:
            name = name.strip() or None
        if name is not None and len(name) > MAX_TIMER_NAME:
            raise InvalidAction(f"a timer's name has at most {MAX_TIMER_NAME} characters")
        now = self.clock()
        timer = self.state.add_timer(name, float(seconds), now, request_id)
        self._timer_event("timer_started", timer, request_id, source, now)
        return timer

    def cancel_timer(self, timer_id: int, request_id: str, source: str = "api") -> Timer:
        self._finish_due()
        timer = self.state.timer(timer_id)
        if timer is None:
            running = ", ".join(str(t.id) for t in self.state.timers()) or "none"
            raise UnknownDevice(f"no timer with id {timer_id} (running timers: {running})")
        now = self.clock()
        cancelled = self.state.settle(timer_id, "cancelled", now)
        if cancelled is None:
            raise InvalidAction(f"timer {timer_id} has already {timer.status}; nothing to cancel")
        self._timer_event("timer_cancelled", cancelled, request_id, source, now)
        return cancelled

    def _timer_event(
        self, kind: EventKind, timer: Timer, request_id: str, source: str, now: float
    ) -> None:
        self._timers_changed.set()
        self._emit(HomeEvent(kind, now, request_id, source, timer=timer))

    def _finish_due(self) -> None:
        for timer in self.state.finish_due(self.clock()):
            log.info("home: timer %s (%s) finished", timer.id, timer.name or "unnamed")
            self._emit(
                HomeEvent("timer_finished", timer.ends, f"timer-{timer.id}", "timer", timer=timer)
            )

    async def _run_timers(self) -> None:
        """Sleep until the next timer ends (or the timers change), then finish the due ones."""
        while True:
            self._timers_changed.clear()
            self._finish_due()
            running = self.state.timers()
            wait = min((t.ends for t in running), default=None)
            timeout = None if wait is None else max(0.0, wait - self.clock()) + 0.01
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timers_changed.wait(), timeout)


def _no_device(home: Home, device_id: str) -> str:
    close = difflib.get_close_matches(device_id, [d.id for d in home.devices], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; GET /v1/home lists the devices"
    return f"no device {device_id!r} in the home{hint}"
