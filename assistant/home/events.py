"""What the home tells others: the outcome of one intent, and the events listeners hear."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from assistant.home.model import Change
from assistant.home.state import Timer
from edge_worker.errors import GalaxyError

EventKind = Literal["changes", "timer_started", "timer_cancelled", "timer_finished"]


@dataclass(frozen=True)
class HomeEvent:
    """Something changed in the home: device attributes (`changes`) or a timer (`timer`)."""

    kind: EventKind
    time: float  # wall clock, seconds
    request_id: str
    source: str  # "api", "voice/templates", "home_assistant", "timer", ...
    changes: tuple[Change, ...] = ()
    timer: Timer | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "time": self.time,
            "request_id": self.request_id,
            "source": self.source,
            "changes": [asdict(c) for c in self.changes],
            "timer": None if self.timer is None else asdict(self.timer),
        }


Listener = Callable[[HomeEvent], None]


@dataclass(frozen=True)
class Outcome:
    """What the home did for one intent and what to say about it.

    `speech` is always set (empty only for HassNevermind). When the home could not act, `error`
    holds the reason (a `HomeError` for a request it refuses, `Unavailable` when Home Assistant
    did not answer) and `speech` says it in words; `changes` lists what did change even then.
    """

    intent: str
    speech: str
    changes: tuple[Change, ...] = ()
    targets: tuple[str, ...] = ()  # device ids the intent resolved to
    timers: tuple[Timer, ...] = ()  # the timers it started, cancelled or reported
    error: GalaxyError | None = None
    data: dict[str, Any] = field(default_factory=dict)  # answers: {"temperature": 20.5, ...}

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "intent": self.intent,
            "speech": self.speech,
            "ok": self.ok,
            "error": None if self.error is None else str(self.error),
            "error_type": None if self.error is None else type(self.error).__name__,
            "changes": [asdict(c) for c in self.changes],
            "targets": list(self.targets),
            "timers": [t.to_dict(now) for t in self.timers],
            "data": self.data,
        }
