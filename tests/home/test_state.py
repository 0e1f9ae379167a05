"""The home's state in SQLite: it survives a restart, follows the home file's devices, and logs
every change with the request that made it."""

from __future__ import annotations

from pathlib import Path

from assistant.home.loader import parse_home
from assistant.home.model import Home
from assistant.home.state import HomeState
from tests.home.conftest import Clock, ServiceFactory

HOME = """\
name: H
areas: [{id: kitchen}]
devices:
  - {id: light.kitchen, area: kitchen}
  - {id: switch.kettle, area: kitchen}
"""


async def test_state_survives_a_restart(tmp_path: Path, make_service: ServiceFactory) -> None:
    svc = make_service(HOME)
    await svc.set("light.kitchen", {"brightness": 30}, "r-1")
    svc.state.close()

    reopened = HomeState(tmp_path / "home.sqlite3", parse_home(HOME))

    assert reopened.get("light.kitchen") == {"on": True, "brightness": 30}
    reopened.close()


async def test_the_stored_state_wins_over_the_files_initial_state(
    tmp_path: Path, make_service: ServiceFactory
) -> None:
    svc = make_service(HOME)
    await svc.set("switch.kettle", {"on": True}, "r-1")
    svc.state.close()
    edited = HOME.replace(
        "{id: switch.kettle, area: kitchen}", "{id: switch.kettle, state: {on: false}}"
    )

    reopened = HomeState(tmp_path / "home.sqlite3", parse_home(edited))

    assert reopened.get("switch.kettle") == {"on": True}
    reopened.close()


def test_a_device_added_to_the_file_starts_at_its_initial_state(tmp_path: Path) -> None:
    HomeState(tmp_path / "h.sqlite3", parse_home(HOME)).close()
    grown = HOME + "  - {id: fan.hood, area: kitchen, state: {on: true, percentage: 40}}\n"

    state = HomeState(tmp_path / "h.sqlite3", parse_home(grown))

    assert state.get("fan.hood") == {"on": True, "percentage": 40}
    state.close()


def test_a_device_removed_from_the_file_is_dropped(tmp_path: Path) -> None:
    HomeState(tmp_path / "h.sqlite3", parse_home(HOME)).close()
    shrunk = HOME.replace("  - {id: switch.kettle, area: kitchen}\n", "")

    state = HomeState(tmp_path / "h.sqlite3", parse_home(shrunk))
    state.close()
    again = HomeState(tmp_path / "h.sqlite3", parse_home(HOME))

    assert "switch.kettle" not in state.all()
    assert again.get("switch.kettle") == {"on": False}  # back in the file: starts afresh
    again.close()


async def test_every_change_is_logged_with_its_request_id_and_source(
    make_service: ServiceFactory, clock: Clock
) -> None:
    svc = make_service(HOME)

    await svc.set("light.kitchen", {"on": True, "brightness": 60}, "req-42", source="api")

    logged = svc.state.changes()
    assert [(c.device, c.attribute, c.old, c.new) for c in logged] == [
        ("light.kitchen", "brightness", 100, 60),
        ("light.kitchen", "on", False, True),
    ]
    assert {(c.request_id, c.source, c.time) for c in logged} == {("req-42", "api", clock.t)}


async def test_a_timer_survives_a_restart(
    tmp_path: Path, make_service: ServiceFactory, clock: Clock, sample: Home
) -> None:
    svc = make_service(sample)
    timer = svc.start_timer(300, "pasta", "r-1")
    svc.state.close()
    clock.advance(60)

    again = make_service(sample)

    assert [(t.id, t.name, t.remaining_s(clock())) for t in again.timers()] == [
        (timer.id, "pasta", 240.0)
    ]
    again.state.close()


async def test_a_timer_that_ended_while_the_gateway_was_down_is_finished_at_the_first_read(
    make_service: ServiceFactory, clock: Clock, sample: Home
) -> None:
    svc = make_service(sample)
    timer = svc.start_timer(300, None, "r-1")
    svc.state.close()
    clock.advance(3600)

    again = make_service(sample)

    assert again.timers() == []
    done = again.state.timer(timer.id)
    assert done is not None and (done.status, done.settled) == ("finished", timer.ends)
    again.state.close()
