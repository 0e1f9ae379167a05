"""The home's tests: the sample home, a service on a temporary SQLite file, a clock to move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import pytest

from assistant.home.actions import HomeService
from assistant.home.bridge import HomeAssistantBridge
from assistant.home.loader import load_home, parse_home, sample_home_path
from assistant.home.model import Home, Intent
from assistant.home.state import HomeState

T0 = 1_750_000_000.0  # a fixed wall clock for tests that move time by hand


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def sample() -> Home:
    return load_home(sample_home_path())


@pytest.fixture
def clock() -> Clock:
    return Clock()


ServiceFactory = Callable[..., HomeService]


@pytest.fixture
def make_service(tmp_path: Path, clock: Clock) -> ServiceFactory:
    """`make_service(home or YAML text, bridge=None)`: a service on tmp_path/home.sqlite3 with
    the test's clock and a fixed local time (Tuesday 4 March 2025, 15:05)."""

    def make(home: Home | str, bridge: HomeAssistantBridge | None = None) -> HomeService:
        if isinstance(home, str):
            home = parse_home(home)
        return HomeService(
            home,
            HomeState(tmp_path / "home.sqlite3", home),
            bridge,
            clock=clock,
            now=lambda: datetime(2025, 3, 4, 15, 5),
        )

    return make


@pytest.fixture
async def service(make_service: ServiceFactory, sample: Home) -> AsyncIterator[HomeService]:
    svc = make_service(sample)
    yield svc
    svc.state.close()


def intent(intent_name: str, /, **slots: object) -> Intent:
    return Intent(intent_name, dict(slots), "templates")


async def say(service: HomeService, intent_name: str, /, **slots: object) -> str:
    return (await service.handle(intent(intent_name, **slots), "r-1")).speech
