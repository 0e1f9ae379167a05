"""Template recognition: HA's English templates with this home's names give INTENTS.md's
intents with flat slots resolved to ids and numbers (the other intent tests import `make_home`)."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.home.model import Area, Device, Home
from assistant.voice.intent.templates import SUPPORTED_INTENTS, TemplateRecognizer


def make_home() -> Home:
    """Five areas and one device of every domain, a few aliases, one alias shared by two lights
    ("ceiling light") and one cover whose class is left to be read from its name."""
    areas = (
        Area("kitchen", "Kitchen"),
        Area("living_room", "Living room", ("lounge",)),
        Area("bedroom", "Bedroom"),
        Area("garage", "Garage"),
        Area("office", "Office", ("study",)),
    )
    devices = (
        Device("light.kitchen_ceiling", "Kitchen light", "kitchen", ("ceiling light",)),
        Device("light.kitchen_counter", "Counter lights", "kitchen"),
        Device("light.living_room_lamp", "Floor lamp", "living_room", ("reading lamp",)),
        Device("light.bedroom", "Bedroom light", "bedroom", ("ceiling light",)),
        Device("light.office_desk", "Desk lamp", "office"),
        Device("switch.coffee_maker", "Coffee maker", "kitchen"),
        Device("switch.office_heater", "Space heater", "office"),
        Device("fan.bedroom", "Ceiling fan", "bedroom"),
        Device("cover.garage_door", "Garage door", "garage", device_class="garage"),
        Device("cover.bedroom_blinds", "Bedroom blinds", "bedroom"),
        Device("lock.front_door", "Front door", None, ("front door lock",)),
        Device("climate.thermostat", "Thermostat", "living_room", ("heating",)),
        Device(
            "media_player.living_room_speaker", "Living room speaker", "living_room", ("stereo",)
        ),
        Device("sensor.bedroom_temperature", "Bedroom temperature", "bedroom"),
    )
    return Home("Test home", areas, devices)


@pytest.fixture(scope="module")
def recognizer() -> TemplateRecognizer:
    return TemplateRecognizer(make_home())


COMMANDS: list[tuple[str, str, dict[str, Any]]] = [
    ("Turn on the kitchen light.", "HassTurnOn", {"name": "light.kitchen_ceiling"}),
    ("turn on the coffee maker", "HassTurnOn", {"name": "switch.coffee_maker"}),
    ("open the garage door", "HassTurnOn", {"name": "cover.garage_door"}),
    ("lock the front door", "HassTurnOn", {"name": "lock.front_door"}),
    ("turn on the study lights", "HassTurnOn", {"area": "office", "domain": "light"}),
    (
        "open the blinds in the bedroom",
        "HassTurnOn",
        {"device_class": "blind", "area": "bedroom", "domain": "cover"},
    ),
    ("turn off the lights in the kitchen", "HassTurnOff", {"area": "kitchen", "domain": "light"}),
    ("unlock the front door", "HassTurnOff", {"name": "lock.front_door"}),
    ("close the garage door", "HassTurnOff", {"name": "cover.garage_door"}),
    ("turn off all the lights", "HassTurnOff", {"domain": "light"}),
    (
        "set the kitchen brightness to thirty percent",
        "HassLightSet",
        {"area": "kitchen", "brightness": 30, "domain": "light"},
    ),
    ("set the bedroom light to 100%", "HassLightSet", {"name": "light.bedroom", "brightness": 100}),
    (
        "set the floor lamp brightness to maximum",
        "HassLightSet",
        {"name": "light.living_room_lamp", "brightness": 100},
    ),
    (
        "open the garage door to 50%",
        "HassSetPosition",
        {"name": "cover.garage_door", "position": 50},
    ),
    ("set the ceiling fan to 50%", "HassFanSetSpeed", {"name": "fan.bedroom", "percentage": 50}),
    ("set the bedroom fan to 30%", "HassFanSetSpeed", {"area": "bedroom", "percentage": 30}),
    (
        "set the temperature to twenty one degrees",
        "HassClimateSetTemperature",
        {"temperature": 21.0},
    ),
    (
        "set the thermostat to 21.5",
        "HassClimateSetTemperature",
        {"name": "climate.thermostat", "temperature": 21.5},
    ),
    ("what is the temperature in the kitchen", "HassClimateGetTemperature", {"area": "kitchen"}),
    ("what's the temperature", "HassClimateGetTemperature", {}),
    (
        "is the front door locked",
        "HassGetState",
        {"name": "lock.front_door", "state": "locked"},
    ),
    ("is the garage door open", "HassGetState", {"name": "cover.garage_door", "state": "open"}),
    ("how many lights are on", "HassGetState", {"domain": "light", "state": "on"}),
    (
        "what is the bedroom temperature",
        "HassGetState",
        {"name": "sensor.bedroom_temperature"},
    ),
    (
        "set the lounge volume to fifty percent",
        "HassSetVolume",
        {"area": "living_room", "volume_level": 50},
    ),
    ("turn up the volume", "HassSetVolume", {"volume_step": 10}),
    ("volume down", "HassSetVolume", {"volume_step": -10}),
    ("pause", "HassMediaPause", {}),
    ("resume", "HassMediaUnpause", {}),
    (
        "next track on the living room speaker",
        "HassMediaNext",
        {"name": "media_player.living_room_speaker"},
    ),
    ("previous track", "HassMediaPrevious", {}),
    ("set a timer for twenty five minutes", "HassStartTimer", {"minutes": 25}),
    ("set a 10 minute timer called pizza", "HassStartTimer", {"minutes": 10, "name": "pizza"}),
    ("cancel the pizza timer", "HassCancelTimer", {"name": "pizza"}),
    ("how much time is left on the timer", "HassTimerStatus", {}),
    ("cancel all timers", "HassCancelAllTimers", {}),
    ("never mind", "HassNevermind", {}),
    ("what time is it", "HassGetCurrentTime", {}),
    ("what's the date today", "HassGetCurrentDate", {}),
]


@pytest.mark.parametrize(("text", "name", "slots"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_command_gives_its_intent_with_flat_resolved_slots(
    recognizer: TemplateRecognizer, text: str, name: str, slots: dict[str, Any]
) -> None:
    intent = recognizer.recognize(text)

    assert intent is not None
    assert (intent.name, intent.slots, intent.source, intent.confidence) == (
        name,
        slots,
        "templates",
        1.0,
    )


def test_every_intent_of_the_contract_has_a_command_here() -> None:
    assert {name for _, name, _ in COMMANDS} == SUPPORTED_INTENTS


def test_percentages_and_durations_are_ints_and_temperatures_floats(
    recognizer: TemplateRecognizer,
) -> None:
    light = recognizer.recognize("set the brightness in the kitchen to 30%")
    climate = recognizer.recognize("set the thermostat to 21")

    assert light is not None and type(light.slots["brightness"]) is int
    assert climate is not None and type(climate.slots["temperature"]) is float


def test_a_hundred_is_read_as_one_hundred(recognizer: TemplateRecognizer) -> None:
    intent = recognizer.recognize("set the brightness in the kitchen to a hundred percent")

    assert intent is not None and intent.slots["brightness"] == 100


def test_a_shared_alias_resolves_to_the_device_in_the_area_said(
    recognizer: TemplateRecognizer,
) -> None:
    bedroom = recognizer.recognize("turn on the ceiling light in the bedroom")
    kitchen = recognizer.recognize("turn on the ceiling light in the kitchen")

    assert bedroom is not None and bedroom.slots["name"] == "light.bedroom"
    assert kitchen is not None and kitchen.slots["name"] == "light.kitchen_ceiling"


def test_the_voice_area_targets_sentences_without_one(recognizer: TemplateRecognizer) -> None:
    intent = recognizer.recognize("turn off the lights in here", area="bedroom")

    assert intent is not None
    assert intent.slots == {"domain": "light", "area": "bedroom"}


def test_here_without_a_known_area_is_not_the_whole_home(recognizer: TemplateRecognizer) -> None:
    assert recognizer.recognize("turn off the lights in here") is None


@pytest.mark.parametrize(
    "text",
    [
        "what is the capital of France",
        "tell me a joke about cats",
        "could you make the kitchen a bit brighter",
        "set the kitchen light to red",  # colours: not in the contract
        "add milk to my shopping list",  # an HA intent the home does not handle
        "what's the weather like",
        "turn off the lights in five minutes",  # delayed commands: not in the contract
    ],
)
def test_sentences_outside_the_contract_match_no_template(
    recognizer: TemplateRecognizer, text: str
) -> None:
    assert recognizer.recognize(text) is None


def test_a_device_of_the_wrong_domain_does_not_fill_a_template(
    recognizer: TemplateRecognizer,
) -> None:
    # "lock [the] {name}" requires a lock: the coffee maker is a switch
    assert recognizer.recognize("lock the coffee maker") is None
