"""The Home Assistant bridge against a local server that answers as HA's REST API does
(tests/home/fake_ha.py; HA itself cannot run here): actions become service calls, HA's states
are read into ours, and HA's failures are reported, never swallowed, never a crash."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from assistant.errors import InvalidAction, Unavailable
from assistant.home.bridge import HomeAssistantBridge, calls_for
from assistant.home.model import Device, Home
from assistant.launcher import free_port
from tests.home.conftest import ServiceFactory, intent
from tests.home.fake_ha import FakeHomeAssistant


@pytest.fixture
def ha() -> Iterator[tuple[FakeHomeAssistant, str]]:
    fake = FakeHomeAssistant()
    server = fake.serve()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def bridge_to(url: str, token: str = "ha-secret") -> HomeAssistantBridge:
    return HomeAssistantBridge(url, token, timeout_s=5.0)


async def test_a_change_becomes_a_service_call_with_the_token(
    ha: tuple[FakeHomeAssistant, str], make_service: ServiceFactory, sample: Home
) -> None:
    fake, url = ha
    service = make_service(sample, bridge_to(url))

    await service.set("light.kitchen_ceiling", {"brightness": 30}, "r-1")

    assert fake.calls == [
        ("light", "turn_on", {"entity_id": "light.kitchen_ceiling", "brightness_pct": 30})
    ]
    assert fake.states["light.kitchen_ceiling"]["attributes"]["brightness"] == 76


async def test_a_spoken_command_is_forwarded_to_home_assistant(
    ha: tuple[FakeHomeAssistant, str], make_service: ServiceFactory, sample: Home
) -> None:
    fake, url = ha
    service = make_service(sample, bridge_to(url))

    out = await service.handle(intent("HassTurnOff", name="lock.front_door"), "r-1")

    assert out.speech == "Unlocked the front door." and out.ok
    assert fake.calls == [("lock", "unlock", {"entity_id": "lock.front_door"})]


LIGHT = Device("light.a", "A", None)
COVER = Device("cover.a", "A", None)
CLIMATE = Device("climate.a", "A", None)
PLAYER = Device("media_player.a", "A", None)
LOCK = Device("lock.a", "A", None)


@pytest.mark.parametrize(
    ("device", "old", "new", "calls"),
    [
        (
            LIGHT,
            {"on": True, "brightness": 80},
            {"on": False, "brightness": 80},
            [("light", "turn_off", {"entity_id": "light.a"})],
        ),
        (LIGHT, {"on": False, "brightness": 80}, {"on": False, "brightness": 20}, []),
        (
            COVER,
            {"open": False, "position": 0},
            {"open": True, "position": 40},
            [("cover", "set_cover_position", {"entity_id": "cover.a", "position": 40})],
        ),
        (
            COVER,
            {"open": False, "position": 0},
            {"open": True, "position": 100},
            [("cover", "open_cover", {"entity_id": "cover.a"})],
        ),
        (
            CLIMATE,
            {"target_temperature": 21.0},
            {"target_temperature": 22.5},
            [("climate", "set_temperature", {"entity_id": "climate.a", "temperature": 22.5})],
        ),
        (
            PLAYER,
            {"playing": False, "volume": 20, "track": 3},
            {"playing": True, "volume": 35, "track": 4},
            [
                (
                    "media_player",
                    "volume_set",
                    {"entity_id": "media_player.a", "volume_level": 0.35},
                ),
                ("media_player", "media_next_track", {"entity_id": "media_player.a"}),
                ("media_player", "media_play", {"entity_id": "media_player.a"}),
            ],
        ),
        (LOCK, {"locked": False}, {"locked": True}, [("lock", "lock", {"entity_id": "lock.a"})]),
    ],
)
def test_each_domain_maps_to_home_assistants_services(
    device: Device, old: dict[str, Any], new: dict[str, Any], calls: list[Any]
) -> None:
    assert calls_for(device, old, new) == calls


async def test_start_reads_home_assistants_states_into_ours(
    ha: tuple[FakeHomeAssistant, str], make_service: ServiceFactory, sample: Home
) -> None:
    fake, url = ha
    fake.entity("light.kitchen_ceiling", "on", brightness=128, friendly_name="Kitchen")
    fake.entity("cover.garage_door", "open", current_position=60)
    fake.entity("sensor.outside_temperature", "9.5", unit_of_measurement="°C")
    fake.entity("media_player.tv", "playing", volume_level=0.5)
    fake.entity("lock.front_door", "unavailable")
    fake.entity("light.not_in_our_home", "on")
    service = make_service(sample, bridge_to(url))

    await service.start()
    try:
        assert service.state_of("light.kitchen_ceiling") == {"on": True, "brightness": 50}
        assert service.state_of("cover.garage_door") == {"open": True, "position": 60}
        assert service.state_of("sensor.outside_temperature") == {"value": 9.5, "unit": "°C"}
        assert service.state_of("media_player.tv")["volume"] == 50
        assert service.state_of("lock.front_door") == {"locked": True}  # unavailable: kept
        assert {c.source for c in service.state.changes()} == {"home_assistant"}
    finally:
        await service.stop()


async def test_when_home_assistant_does_not_answer_nothing_changes_and_the_error_says_so(
    make_service: ServiceFactory, sample: Home
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    service = make_service(sample, bridge_to(url))

    with pytest.raises(Unavailable, match="did not do POST /api/services/light/turn_on"):
        await service.set("light.hall", {"on": True}, "r-1")

    assert service.state_of("light.hall")["on"] is False
    assert service.snapshot()["home_assistant"]["last_error"].startswith("POST /api/services")


async def test_a_spoken_command_hears_that_home_assistant_is_down(
    make_service: ServiceFactory, sample: Home
) -> None:
    service = make_service(sample, bridge_to(f"http://127.0.0.1:{free_port()}"))

    out = await service.handle(intent("HassTurnOn", name="light.hall"), "r-1")

    assert out.speech == "I couldn't reach Home Assistant, so the hall light is unchanged."
    assert isinstance(out.error, Unavailable) and out.changes == ()


async def test_a_failure_part_way_keeps_what_home_assistant_did(
    ha: tuple[FakeHomeAssistant, str], make_service: ServiceFactory, sample: Home
) -> None:
    fake, url = ha
    fake.failing.add("light.floor_lamp")
    service = make_service(sample, bridge_to(url))

    out = await service.handle(intent("HassTurnOff", area="living_room"), "r-1")

    assert out.speech == (
        "I couldn't reach Home Assistant, so the floor lamp is unchanged; "
        "only the living room light changed."
    )
    assert [c.device for c in out.changes] == ["light.living_room_ceiling"]
    assert service.state_of("light.floor_lamp")["on"] is True


async def test_a_refused_token_is_reported_with_what_to_set(
    ha: tuple[FakeHomeAssistant, str], make_service: ServiceFactory, sample: Home
) -> None:
    _, url = ha
    service = make_service(sample, bridge_to(url, token="wrong"))

    with pytest.raises(Unavailable, match=r"token was refused.*GALAXY_HA_TOKEN"):
        await service.set("switch.sprinklers", {"on": True}, "r-1")


async def test_a_service_home_assistant_refuses_is_an_invalid_action(
    ha: tuple[FakeHomeAssistant, str],
) -> None:
    _, url = ha

    with pytest.raises(InvalidAction, match="HTTP 400"):
        await bridge_to(url).request("POST", "/api/services/vacuum/start", {"entity_id": "v.x"})


async def test_the_home_starts_even_when_home_assistant_is_down(
    make_service: ServiceFactory, sample: Home
) -> None:
    service = make_service(sample, bridge_to(f"http://127.0.0.1:{free_port()}"))

    await service.start()
    try:
        assert service.snapshot()["home_assistant"]["last_error"] is not None
        assert service.state_of("light.hall") == {"on": False, "brightness": 100}
    finally:
        await service.stop()


async def test_refresh_on_demand_reads_new_states(
    ha: tuple[FakeHomeAssistant, str], make_service: ServiceFactory, sample: Home
) -> None:
    fake, url = ha
    service = make_service(sample, bridge_to(url))
    fake.entity("switch.sprinklers", "on")

    changes = await service.refresh("r-sync")

    assert [(c.device, c.new) for c in changes] == [("switch.sprinklers", True)]
