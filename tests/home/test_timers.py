"""Timers: started, cancelled, reported; finished by the background task when they end (and
lazily, on any read, when no task ran)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from assistant.errors import InvalidAction, UnknownDevice
from assistant.home.actions import HomeService
from assistant.home.events import HomeEvent
from assistant.home.model import Home
from assistant.home.state import HomeState
from tests.home.conftest import Clock


async def test_a_short_timer_finishes_and_listeners_hear_it(tmp_path: Path, sample: Home) -> None:
    service = HomeService(sample, HomeState(tmp_path / "home.sqlite3", sample))  # real clock
    finished: asyncio.Queue[HomeEvent] = asyncio.Queue()
    service.subscribe(lambda e: finished.put_nowait(e) if e.kind == "timer_finished" else None)
    await service.start()
    try:
        timer = service.start_timer(1, "egg", "r-1")

        event = await asyncio.wait_for(finished.get(), timeout=10)

        assert event.timer is not None and event.timer.id == timer.id
        assert event.timer.status == "finished"
        assert service.timers() == []
        assert finished.empty()  # heard once, not again by a later read
    finally:
        await service.stop()


def test_a_timer_past_its_end_is_finished_on_the_next_read(
    service: HomeService, clock: Clock
) -> None:
    heard: list[HomeEvent] = []
    service.subscribe(heard.append)
    timer = service.start_timer(30, None, "r-1")
    clock.advance(31)

    running = service.timers()

    assert running == []
    assert [(e.kind, e.timer.id if e.timer else None) for e in heard] == [
        ("timer_started", timer.id),
        ("timer_finished", timer.id),
    ]
    assert [t.status for t in service.timers(running_only=False)] == ["finished"]


def test_cancelling_a_timer_settles_it(service: HomeService, clock: Clock) -> None:
    timer = service.start_timer(60, "tea", "r-1")
    clock.advance(10)

    cancelled = service.cancel_timer(timer.id, "r-2")

    assert (cancelled.status, cancelled.settled) == ("cancelled", clock.t)
    assert service.timers() == []


def test_cancelling_an_unknown_timer_is_refused(service: HomeService) -> None:
    with pytest.raises(UnknownDevice, match="no timer with id 99"):
        service.cancel_timer(99, "r-1")


def test_cancelling_a_finished_timer_is_refused(service: HomeService, clock: Clock) -> None:
    timer = service.start_timer(5, None, "r-1")
    clock.advance(6)

    with pytest.raises(InvalidAction, match="has already finished"):
        service.cancel_timer(timer.id, "r-2")


@pytest.mark.parametrize("seconds", [0, 0.5, -3, 24 * 3600 + 1])
def test_a_timer_runs_between_1_second_and_24_hours(service: HomeService, seconds: float) -> None:
    with pytest.raises(InvalidAction, match="24 hours"):
        service.start_timer(seconds, None, "r-1")
