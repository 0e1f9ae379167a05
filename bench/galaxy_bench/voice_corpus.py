"""What `galaxy bench --voice` says to the sample home (assistant/home/sample_home.yaml).

Each command is spoken by piper and carries what a correct answer is: HA's intent name and the
slots that must be there with these values (more slots may come; a slot given here as None must
be there, any value). The phrasings were written for the household, not taken from the
templates: some are template sentences, some paraphrases only the classifier can catch.
Every area of the sample home is named at least once; numbers are spoken both as digits and
as words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistant.home.model import Home


@dataclass(frozen=True)
class Case:
    text: str
    intent: str  # HA's intent name; "conversation" for questions
    slots: dict[str, Any] = field(default_factory=dict)


def c(text: str, intent: str, **slots: Any) -> Case:
    return Case(text, intent, slots)


COMMANDS: tuple[Case, ...] = (
    # on / off, by area and by name
    c("turn on the kitchen lights", "HassTurnOn", area="kitchen", domain="light"),
    c("switch on the lights in the kitchen", "HassTurnOn", area="kitchen", domain="light"),
    c("turn on the bedroom light", "HassTurnOn", name="light.bedroom_ceiling"),
    c("turn on the hallway light", "HassTurnOn", name="light.hall"),
    c("turn on the lights in the office", "HassTurnOn", area="office", domain="light"),
    c("turn on the garden lights", "HassTurnOn", name="light.garden"),
    c("turn on the coffee machine", "HassTurnOn", name="switch.coffee_machine"),
    c("turn on the bathroom fan", "HassTurnOn", name="fan.bathroom_extractor"),
    c("turn on the sprinklers", "HassTurnOn", name="switch.sprinklers"),
    c("switch on the car charger", "HassTurnOn", name="switch.car_charger"),
    c("open the garage door", "HassTurnOn", name="cover.garage_door"),
    c("open the living room blinds", "HassTurnOn", name="cover.living_room_blinds"),
    c("lock the front door", "HassTurnOn", name="lock.front_door"),
    c("turn off the living room lights", "HassTurnOff", area="living_room", domain="light"),
    c("switch off the floor lamp", "HassTurnOff", name="light.floor_lamp"),
    c("turn off the lights in the garage", "HassTurnOff", area="garage", domain="light"),
    c("turn off the bathroom light", "HassTurnOff", name="light.bathroom"),
    c("turn off the space heater", "HassTurnOff", name="switch.space_heater"),
    c("close the bedroom curtains", "HassTurnOff", name="cover.bedroom_curtains"),
    c("close the garage door", "HassTurnOff", name="cover.garage_door"),
    c("unlock the garage side door", "HassTurnOff", name="lock.garage_side_door"),
    # levels, with numbers as digits and as words
    c(
        "set the kitchen lights to 30 percent",
        "HassLightSet",
        area="kitchen",
        domain="light",
        brightness=30,
    ),
    c(
        "set the bedside lamp to seventy percent",
        "HassLightSet",
        name="light.bedside_lamp",
        brightness=70,
    ),
    c(
        "set the desk lamp brightness to 50 percent",
        "HassLightSet",
        name="light.desk_lamp",
        brightness=50,
    ),
    c(
        "set the brightness in the living room to twenty percent",
        "HassLightSet",
        area="living_room",
        domain="light",
        brightness=20,
    ),
    c(
        "set the living room blinds to 40 percent",
        "HassSetPosition",
        name="cover.living_room_blinds",
        position=40,
    ),
    c(
        "set the bedroom fan to 80 percent",
        "HassFanSetSpeed",
        name="fan.bedroom_fan",
        percentage=80,
    ),
    c("set the temperature to 22 degrees", "HassClimateSetTemperature", temperature=22),
    c("set the thermostat to nineteen degrees", "HassClimateSetTemperature", temperature=19),
    c("set the volume of the living room speaker to 40 percent", "HassSetVolume", volume_level=40),
    # questions the home answers from its state
    c("is the garage door open", "HassGetState", name="cover.garage_door"),
    c("is the front door locked", "HassGetState", name="lock.front_door"),
    c("are the kitchen lights on", "HassGetState", area="kitchen", domain="light"),
    c("what is the temperature", "HassClimateGetTemperature"),
    c("what time is it", "HassGetCurrentTime"),
    # media
    c("pause the TV", "HassMediaPause", name="media_player.tv"),
    c(
        "resume the living room speaker",
        "HassMediaUnpause",
        name="media_player.living_room_speaker",
    ),
    c(
        "next track on the living room speaker",
        "HassMediaNext",
        name="media_player.living_room_speaker",
    ),
    # timers
    c("set a timer for 5 minutes", "HassStartTimer", minutes=5),
    c("set a ten minute timer", "HassStartTimer", minutes=10),
    c("how much time is left on the timer", "HassTimerStatus"),
    c("cancel the timer", "HassCancelTimer"),
    # paraphrases the templates do not have
    c(
        "could you make the kitchen a bit brighter",
        "HassLightSet",
        area="kitchen",
        domain="light",
        brightness_step=None,
    ),
    c("kill the lights in the bedroom", "HassTurnOff", area="bedroom", domain="light"),
    c("please shut the garage door", "HassTurnOff", name="cover.garage_door"),
    c(
        "dim the lights in the living room",
        "HassLightSet",
        area="living_room",
        domain="light",
        brightness_step=None,
    ),
    c("turn the music up", "HassSetVolume", volume_step=None),
    c("could you switch the sprinklers off", "HassTurnOff", name="switch.sprinklers"),
)

QUESTIONS: tuple[Case, ...] = (
    c("what is the capital of France", "conversation"),
    c("tell me a joke about cats", "conversation"),
    c("how do I boil an egg", "conversation"),
)

AREAS = ("kitchen", "living_room", "bedroom", "bathroom", "hall", "garage", "office", "garden")


TARGET_SLOTS = ("name", "area", "domain", "device_class")


def targets(home: Home, slots: dict[str, Any]) -> frozenset[str] | None:
    """The device ids a target's slots point at (INTENTS.md), None when there is no target:
    "the living room blinds" by name and by room + class are the same request."""
    if "name" in slots:
        return frozenset([slots["name"]])
    if not any(k in slots for k in TARGET_SLOTS):
        return None
    return frozenset(
        d.id
        for d in home.devices
        if slots.get("area") in (None, d.area)
        and slots.get("domain") in (None, d.domain)
        and slots.get("device_class") in (None, d.device_class)
    )


def correct(home: Home, case: Case, intent: dict[str, Any] | None) -> bool:
    """Whether a turn's intent is the one `case` asks for: the same intent, the same devices,
    and every other expected slot (None: present, any value)."""
    if intent is None or intent.get("name") != case.intent:
        return False
    slots = intent.get("slots") or {}
    expected = {k: v for k, v in case.slots.items() if k in TARGET_SLOTS}
    if expected:
        got = targets(home, slots)
        want = targets(home, expected)
        if got != want:
            return False
    for key, want_value in case.slots.items():
        if key in TARGET_SLOTS:
            continue
        if key not in slots or (want_value is not None and slots[key] != want_value):
            return False
    return True
