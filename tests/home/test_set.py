"""Changing a device directly (what `POST /v1/home/devices/{id}` does): the validation a spoken
command gets, coupled attributes kept consistent, and listeners told."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.errors import InvalidAction, UnknownDevice
from assistant.home.actions import HomeService
from assistant.home.events import HomeEvent
from assistant.home.model import Change


async def test_setting_attributes_answers_the_changes(service: HomeService) -> None:
    changes = await service.set("light.kitchen_ceiling", {"on": True, "brightness": 30}, "r-1")

    assert changes == [
        Change("light.kitchen_ceiling", "on", False, True),
        Change("light.kitchen_ceiling", "brightness", 100, 30),
    ]
    assert service.state_of("light.kitchen_ceiling") == {"on": True, "brightness": 30}


async def test_setting_what_already_is_changes_nothing(service: HomeService) -> None:
    assert await service.set("lock.front_door", {"locked": True}, "r-1") == []
    assert service.state.changes() == []


async def test_an_unknown_device_is_refused_with_a_suggestion(service: HomeService) -> None:
    with pytest.raises(
        UnknownDevice, match=r"no device 'light.kitchen_ceilin'.*light.kitchen_ceiling"
    ):
        await service.set("light.kitchen_ceilin", {"on": True}, "r-1")


@pytest.mark.parametrize(
    ("device", "values", "message"),
    [
        (
            "light.hall",
            {"colour": "red"},
            "has no attribute 'colour'; a light takes: on, brightness",
        ),
        ("light.hall", {"brightness": 101}, "brightness goes from 0 to 100, not 101"),
        ("light.hall", {"brightness": -1}, "brightness goes from 0 to 100, not -1"),
        ("light.hall", {"brightness": 50.5}, "brightness is a whole number, not 50.5"),
        ("light.hall", {"brightness": True}, "brightness is a number, not True"),
        ("light.hall", {"on": 1}, "on is true or false, not 1"),
        ("light.hall", {"on": True, "brightness": 0}, "brightness 0 turns the hall light off"),
        ("light.hall", {}, "nothing to set on the hall light"),
        ("sensor.office_co2", {"value": 400}, "The office CO2 is a sensor and read-only"),
        (
            "climate.thermostat",
            {"current_temperature": 25},
            "current temperature is read-only; you can set: target_temperature",
        ),
        ("climate.thermostat", {"target_temperature": 4}, "goes from 5 to 35 degrees, not 4"),
        ("cover.garage_door", {"position": 150}, "position goes from 0 to 100, not 150"),
        ("cover.garage_door", {"open": False, "position": 30}, "cannot be closed at position 30"),
        ("media_player.tv", {"volume": 120}, "volume goes from 0 to 100, not 120"),
        ("media_player.tv", {"track": 0}, "track is a whole number from 1, not 0"),
        ("fan.bedroom_fan", {"percentage": "fast"}, "percentage is a number, not 'fast'"),
    ],
)
async def test_an_invalid_change_is_refused_and_says_what_is_allowed(
    service: HomeService, device: str, values: dict[str, Any], message: str
) -> None:
    before = service.state.all()

    with pytest.raises(InvalidAction) as info:
        await service.set(device, values, "r-1")

    assert message in str(info.value)
    assert service.state.all() == before


async def test_a_position_alone_opens_or_closes_the_cover(service: HomeService) -> None:
    await service.set("cover.garage_door", {"position": 30}, "r-1")
    assert service.state_of("cover.garage_door") == {"open": True, "position": 30}

    await service.set("cover.garage_door", {"position": 0}, "r-2")
    assert service.state_of("cover.garage_door") == {"open": False, "position": 0}


async def test_turning_on_a_light_at_brightness_0_brings_it_to_full(service: HomeService) -> None:
    await service.set("light.hall", {"brightness": 0}, "r-1")

    await service.set("light.hall", {"on": True}, "r-2")

    assert service.state_of("light.hall") == {"on": True, "brightness": 100}


async def test_several_devices_change_all_or_none(service: HomeService) -> None:
    with pytest.raises(InvalidAction):
        await service.apply(
            {"light.hall": {"on": True}, "light.garage": {"brightness": 500}}, "r-1", "api"
        )

    assert service.state_of("light.hall")["on"] is False


async def test_listeners_hear_every_change_with_its_request(service: HomeService) -> None:
    heard: list[HomeEvent] = []
    service.subscribe(heard.append)

    await service.set("switch.coffee_machine", {"on": True}, "r-9", source="api")

    assert [(e.kind, e.request_id, e.source, e.changes) for e in heard] == [
        ("changes", "r-9", "api", (Change("switch.coffee_machine", "on", False, True),))
    ]


async def test_a_failing_listener_neither_stops_the_change_nor_the_others(
    service: HomeService,
) -> None:
    heard: list[HomeEvent] = []

    def broken(event: HomeEvent) -> None:
        raise RuntimeError("dashboard gone")

    service.subscribe(broken)
    service.subscribe(heard.append)

    await service.set("switch.coffee_machine", {"on": True}, "r-1")

    assert len(heard) == 1 and service.state_of("switch.coffee_machine")["on"] is True


async def test_an_unsubscribed_listener_hears_nothing(service: HomeService) -> None:
    heard: list[HomeEvent] = []
    unsubscribe = service.subscribe(heard.append)
    unsubscribe()

    await service.set("switch.coffee_machine", {"on": True}, "r-1")

    assert heard == []


def test_the_snapshot_lists_areas_devices_with_state_and_timers(service: HomeService) -> None:
    service.start_timer(60, "tea", "r-1")

    snap = service.snapshot()

    assert snap["name"] == "The Sample Home" and len(snap["digest"]) == 64
    assert snap["areas"][0] == {"id": "kitchen", "name": "Kitchen", "aliases": ["cooking area"]}
    hall = next(d for d in snap["devices"] if d["id"] == "light.hall")
    assert hall == {
        "id": "light.hall",
        "name": "Hall light",
        "domain": "light",
        "area": "hall",
        "aliases": ["hallway light"],
        "device_class": None,
        "state": {"on": False, "brightness": 100},
    }
    assert [(t["name"], t["remaining_s"]) for t in snap["timers"]] == [("tea", 60.0)]
    assert snap["home_assistant"] is None
