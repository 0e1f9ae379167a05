"""Slot filling for the classifier's intents: names, numbers, directions, and no action when a
needed slot is missing."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.voice.intent.slots import SlotFiller
from tests.voice.test_intent_templates import make_home


@pytest.fixture(scope="module")
def filler() -> SlotFiller:
    return SlotFiller(make_home())


CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "HassLightSet",
        "could you make the kitchen a bit brighter",
        {"area": "kitchen", "domain": "light", "brightness_step": 10},
    ),
    ("HassLightSet", "dim the bedroom light", {"name": "light.bedroom", "brightness_step": -20}),
    ("HassLightSet", "dim the desk lamp to 30%", {"name": "light.office_desk", "brightness": 30}),
    (
        "HassLightSet",
        "brighten the counter lights by forty percent",
        {"name": "light.kitchen_counter", "brightness_step": 40},
    ),
    (
        "HassLightSet",
        "the desk lamp is too bright",
        {"name": "light.office_desk", "brightness_step": -20},
    ),
    (
        "HassLightSet",
        "floor lamp at half please",
        {"name": "light.living_room_lamp", "brightness": 50},
    ),
    ("HassClimateSetTemperature", "it's too cold in here", {"temperature_step": 1.0}),
    ("HassClimateSetTemperature", "it's freezing", {"temperature_step": 1.0}),
    ("HassClimateSetTemperature", "turn the heat down", {"temperature_step": -1.0}),
    (
        "HassClimateSetTemperature",
        "make it two degrees warmer in the kitchen",  # no climate in the kitchen: the home's
        {"temperature_step": 2.0},
    ),
    (
        "HassClimateSetTemperature",
        "i'd like it at twenty one point five degrees",
        {"temperature": 21.5},
    ),
    ("HassSetVolume", "turn it up", {"volume_step": 10}),
    (
        "HassSetVolume",
        "make the stereo a lot quieter",
        {"name": "media_player.living_room_speaker", "volume_step": -20},
    ),
    ("HassSetVolume", "put the volume at thirty", {"volume_level": 30}),
    ("HassStartTimer", "remind me in an hour and a half", {"hours": 1, "minutes": 30}),
    ("HassStartTimer", "half an hour for the pasta please", {"minutes": 30}),
    ("HassStartTimer", "a timer of ten minutes called eggs", {"minutes": 10, "name": "eggs"}),
    ("HassCancelTimer", "stop the five minute timer", {"start_minutes": 5}),
    # "lights" for the device "Kitchen light": every light of the kitchen, which has two
    (
        "HassTurnOn",
        "could you get the kitchen lights going",
        {"area": "kitchen", "domain": "light"},
    ),
    ("HassTurnOff", "kill the lights in the lounge", {"area": "living_room", "domain": "light"}),
    (
        "HassGetState",
        "did I leave the garage door open",
        {"name": "cover.garage_door", "state": "open"},
    ),
    (
        "HassGetState",
        "are the lights on in the kitchen",
        {"area": "kitchen", "domain": "light", "state": "on"},
    ),
    ("HassFanSetSpeed", "run the fan at forty percent", {"name": "fan.bedroom", "percentage": 40}),
    (
        "HassSetPosition",
        "put the garage door halfway",
        {"name": "cover.garage_door", "position": 50},
    ),
    ("HassMediaNext", "skip this song", {}),
    ("HassGetCurrentTime", "have you got the time", {}),
]


@pytest.mark.parametrize(("intent", "text", "slots"), CASES, ids=[c[1] for c in CASES])
def test_slots_are_read_from_a_free_sentence(
    filler: SlotFiller, intent: str, text: str, slots: dict[str, Any]
) -> None:
    assert filler.fill(intent, text) == slots


@pytest.mark.parametrize(
    ("intent", "text"),
    [
        ("HassLightSet", "make it brighter"),  # no target, and more than one light
        ("HassLightSet", "the kitchen lights"),  # a target, but no brightness or direction
        ("HassStartTimer", "set a timer"),  # no duration
        ("HassTurnOn", "turn it on"),  # no target at all
        ("HassTurnOff", "turn off the lights in here"),  # "here", and the room is unknown
        ("HassClimateSetTemperature", "the thermostat"),  # neither a temperature nor a step
        # misheard "floor lamp": "switch" is the verb, and a domain alone would switch every
        # light of the home; the classifier does not act on that
        ("HassTurnOff", "switch off the four lamp"),
        ("HassTurnOn", "turn the lights on please"),
    ],
)
def test_an_intent_missing_a_needed_slot_is_not_acted_on(
    filler: SlotFiller, intent: str, text: str
) -> None:
    assert filler.fill(intent, text) is None


def test_the_area_the_voice_came_from_is_the_target_when_none_is_said(filler: SlotFiller) -> None:
    assert filler.fill("HassLightSet", "make it brighter", area="bedroom") == {
        "area": "bedroom",
        "domain": "light",
        "brightness_step": 20,
    }


def test_a_device_of_another_domain_is_not_a_target(filler: SlotFiller) -> None:
    # the thermostat is named, but a light intent cannot act on it: no light target remains
    assert filler.fill("HassLightSet", "make the thermostat brighter") is None


def test_delexicalizing_replaces_names_with_nouns_and_rooms(filler: SlotFiller) -> None:
    text = "Turn on the Counter lights in the lounge and open the garage door"

    assert filler.delexicalize(text) == "turn on the light in the room and open the garage door"
