"""Intent recognition by Home Assistant's English sentence templates (hassil), in milliseconds.

`TemplateRecognizer(home)` runs hassil over home-assistant-intents' English templates, restricted
to the intents of INTENTS.md, with this home's names as slot lists, the way Home Assistant's
conversation default agent builds them:

- `{name}`: every device name and alias -> the device id, with `{"domain": ..., "device_class":
  ...}` as the value's context, so a template's `requires_context: {domain: [...]}` only accepts
  names of devices it can act on ("open the garage door" is a cover, "lock the front door" a lock);
- `{area}`: every area name and alias -> the area id;
- HA's fixed lists (`on_off_states`, `cover_classes`, brightness/volume/temperature ranges, timer
  lists, ...) come from the intents data. Range lists read digits and number words ("thirty
  percent", "twenty one degrees"): hassil spells every number of the range with unicode-rbnf.

Templates that need a list this home has no values for (`{floor}`) or a slot the contract has no
place for (colours, colour temperature, delayed commands `{timer_command}`, zones, search) are
left out, and so are blocks for domains the home has none of (hassil's `filter_intents`).

Sentences HA resolves to the satellite's own area ("turn on the lights", "set the temperature to
21", "pause") use `area` when the caller knows where the voice came from; without it they apply to
the whole home (the result has no `area` slot: `domain` alone is every such device, a climate or
media intent without target is the home's only one), except that an on/off, state, brightness,
position or fan command that says "here" ("turn off the lights in here") is no match: acting on
every light of the home is not what it asks.

Results are `Intent(name, flat slots, source="templates", confidence=1.0)` with slot values
resolved to ids and numbers (see INTENTS.md): percentages, timer durations and positions are
`int`, temperatures `float`. HA's `HassSetVolumeRelative` comes back as `HassSetVolume` with a
signed `volume_step` (our extension; "up"/"down" without a number step by 10). Timer intents
keep HA's `start_hours`/`start_minutes`/`start_seconds` slots ("cancel the 5 minute timer").
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from typing import Any

import home_assistant_intents
from hassil import Intents, RecognizeResult, TextSlotList, filter_intents, parse_sentence
from hassil.intents import SlotList
from hassil.recognize import recognize_ranked

from assistant.home.model import Device, Home, Intent
from assistant.voice.intent.numbers import normalize_spoken_numbers

log = logging.getLogger(__name__)

LANGUAGE = "en"

# The intents the home handles (INTENTS.md): the only names a recogniser may return.
SUPPORTED_INTENTS: frozenset[str] = frozenset(
    {
        "HassTurnOn",
        "HassTurnOff",
        "HassLightSet",
        "HassSetPosition",
        "HassFanSetSpeed",
        "HassClimateSetTemperature",
        "HassClimateGetTemperature",
        "HassGetState",
        "HassSetVolume",
        "HassMediaPause",
        "HassMediaUnpause",
        "HassMediaNext",
        "HassMediaPrevious",
        "HassStartTimer",
        "HassCancelTimer",
        "HassTimerStatus",
        "HassCancelAllTimers",
        "HassNevermind",
        "HassGetCurrentTime",
        "HassGetCurrentDate",
    }
)
# HA intents read from the templates and returned under a supported name.
RENAMED_INTENTS: dict[str, str] = {"HassSetVolumeRelative": "HassSetVolume"}
TEMPLATE_INTENTS: frozenset[str] = SUPPORTED_INTENTS | frozenset(RENAMED_INTENTS)

# Lists a template may not use: no values in a home without floors, or a slot INTENTS.md has no
# place for. Sentences referring to them are dropped (their intents' other sentences stay).
UNSUPPORTED_LISTS: frozenset[str] = frozenset(
    {
        "floor",
        "color",
        "color_temperature",
        "color_temperature_names",
        "timer_command",
        "zone",
        "search_query",
        "media_class",
        "message",
        "fan_mode",
        "shopping_list_item",
        "todo_list_item",
        "bs_open_states",
        "bs_occupancy_states",
    }
)

INT_SLOTS = frozenset(
    {
        "brightness",
        "position",
        "percentage",
        "volume_level",
        "volume_step",
        "hours",
        "minutes",
        "seconds",
        "start_hours",
        "start_minutes",
        "start_seconds",
    }
)
FLOAT_SLOTS = frozenset({"temperature"})
VOLUME_STEP = 10  # percent, for "volume up" / "volume down" without a number (HA's default)

# Context value standing for "the whole home" where HA's templates want the satellite's area.
_HOME_AREA = "__home__"
# Intents that act on every matching device when no area is given: "turn off the lights in here"
# with no known area is not taken as the whole home (climate, volume and media intents are: a
# home has one thermostat or speaker more often than not, and the home picks the only one).
TARGET_INTENTS = frozenset(
    {
        "HassTurnOn",
        "HassTurnOff",
        "HassGetState",
        "HassLightSet",
        "HassSetPosition",
        "HassFanSetSpeed",
    }
)
# Intents whose `name` slot is a timer's name (free text), not a device id.
_TIMER_INTENTS = frozenset({"HassStartTimer", "HassCancelTimer", "HassTimerStatus"})
HERE = re.compile(r"\b(here|this (room|area|space))\b", re.IGNORECASE)
# HA's cover device classes, read from a cover's name when the home file does not give one.
_COVER_CLASS_WORDS = (
    ("garage", "garage"),
    ("gate", "gate"),
    ("door", "door"),
    ("window", "window"),
    ("blind", "blind"),
    ("shade", "shade"),
    ("shutter", "shutter"),
    ("curtain", "curtain"),
    ("awning", "awning"),
)
# hassil spells a range's numbers (unicode-rbnf) the first time a sentence needs them: one
# sentence per range shape (0-100, 0-100 in halves, 1-100) builds them all at start-up.
_WARM_UP = (
    "set the brightness to fifty percent",
    "set the temperature to twenty one degrees",
    "set a timer for twenty five minutes",
    "turn on the lights",
)


@functools.cache
def _english_data() -> dict[str, Any]:
    """HA's English intents data (intents, lists, expansion rules, skip words), read once."""
    data = home_assistant_intents.get_intents(LANGUAGE)
    if data is None:
        raise RuntimeError(
            f"home-assistant-intents has no {LANGUAGE!r} data: reinstall the package"
        )
    return data


@functools.cache
def supported_templates_dict() -> dict[str, Any]:
    """HA's English data restricted to `TEMPLATE_INTENTS` and to sentences whose lists exist
    (see `UNSUPPORTED_LISTS`); a dict for `hassil.Intents.from_dict`. Do not mutate."""
    data = _english_data()
    rules = {name: parse_sentence(body) for name, body in data["expansion_rules"].items()}
    intents: dict[str, Any] = {}
    for name, intent in data["intents"].items():
        if name not in TEMPLATE_INTENTS:
            continue
        blocks = []
        for block in intent["data"]:
            kept = [
                text
                for text in block["sentences"]
                if UNSUPPORTED_LISTS.isdisjoint(parse_sentence(text).list_names(rules))
            ]
            if kept:
                blocks.append({**block, "sentences": kept})
        if blocks:
            intents[name] = {"data": blocks}
    filtered = {key: value for key, value in data.items() if key not in ("intents", "responses")}
    filtered["intents"] = intents
    return filtered


def home_intents(home: Home) -> Intents:
    """The supported templates, without blocks for domains the home has no device of."""
    intents = Intents.from_dict(copy.deepcopy(supported_templates_dict()))
    return filter_intents(intents, domains={device.domain for device in home.devices})


def device_class(device: Device) -> str | None:
    """HA's device class (`garage`, `door`, `blind`, ...): the home file's, else, for a cover,
    the first class word of its name or id ("Garage door" -> garage, so "open the garage door"
    and "close the blinds" work in a home file that leaves classes out)."""
    if device.device_class is not None:
        return device.device_class
    if device.domain != "cover":
        return None
    words = re.findall(r"[a-z]+", f"{device.name} {device.id.split('.', 1)[1]}".lower())
    for word, cls in _COVER_CLASS_WORDS:
        if any(w.rstrip("s") == word for w in words):
            return cls
    return None


def home_slot_lists(home: Home) -> dict[str, SlotList]:
    """`{name}` and `{area}` slot lists for this home, as HA's default agent makes them
    (names and aliases, the device's domain and device class as the value's context)."""
    names: list[tuple[str, Any, dict[str, Any]]] = []
    for device in home.devices:
        context: dict[str, Any] = {"domain": device.domain}
        if (cls := device_class(device)) is not None:
            context["device_class"] = cls
        names.extend((text, device.id, context) for text in device.names if text.strip())
    areas = [(text, area.id) for area in home.areas for text in area.names if text.strip()]
    return {
        "name": TextSlotList.from_tuples(names, allow_template=False, name="name"),
        "area": TextSlotList.from_tuples(areas, allow_template=False, name="area"),
    }


def flat_slots(intent_name: str, slots: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """HA's intent name and slot values -> the contract's (INTENTS.md): renamed intents,
    `int`/`float` numbers, a signed `volume_step`."""
    out: dict[str, Any] = {}
    for key, value in slots.items():
        if key in INT_SLOTS and isinstance(value, int | float):
            out[key] = round(value)
        elif key in FLOAT_SLOTS and isinstance(value, int | float):
            out[key] = float(value)
        elif isinstance(value, str):
            out[key] = value.strip()
        else:
            out[key] = value
    if intent_name == "HassSetVolumeRelative":
        step = out.get("volume_step")
        if step == "up":
            out["volume_step"] = VOLUME_STEP
        elif step == "down":
            out["volume_step"] = -VOLUME_STEP
    return RENAMED_INTENTS.get(intent_name, intent_name), out


class TemplateRecognizer:
    """HA's English templates with this home's names; `recognize` takes milliseconds.

    Built once per home (slot lists, template parsing and hassil's number tries are prepared
    here, not on the first sentence). `recognize` keeps no state between calls, so threads may
    share one recogniser.
    """

    def __init__(self, home: Home) -> None:
        self.home = home
        self.intents = home_intents(home)
        self.slot_lists = home_slot_lists(home)
        self._devices = {device.id: device for device in home.devices}
        for intent in self.intents.intents.values():
            for block in intent.data:
                _ = block.sentences  # parse every template now (a cached property)
        for text in _WARM_UP:
            self.recognize(text)

    def recognize(self, text: str, area: str | None = None) -> Intent | None:
        """The best template match of `text`, or None when no template matches.

        `area`: the area id the voice came from (a satellite's room), for sentences like "turn
        on the lights in here"; None: such sentences apply to the whole home, except commands
        for every device of a kind that say "here" (see the module docstring).
        """
        context_area = area if area is not None else _HOME_AREA
        results = recognize_ranked(
            normalize_spoken_numbers(text),  # "a hundred" -> "one hundred", as rbnf spells it
            self.intents,
            slot_lists=self.slot_lists,
            intent_context={"area": {"value": context_area, "text": ""}},
            language=LANGUAGE,
            best_slot_name="name",  # HA: a device's name beats an area of the same name
        )
        for result in results:
            intent = self._to_intent(result, text)
            if intent is not None:
                return intent
        return None

    def _to_intent(self, result: RecognizeResult, text: str) -> Intent | None:
        slots = {entity.name: entity.value for entity in result.entities_list}
        if slots.get("area") == _HOME_AREA:
            if result.intent.name in TARGET_INTENTS and HERE.search(text):
                return None  # "in here" from a voice whose room is unknown
            del slots["area"]
        device_id = slots.get("name")
        if result.intent.name not in _TIMER_INTENTS and device_id is not None:
            device = self._devices.get(device_id)
            if device is None:
                return None
            if "area" in slots and device.area != slots["area"]:
                # "the ceiling light in the bedroom" when two devices share a name: the
                # ranked results hold one per device, keep the one in that area.
                return None
        name, flat = flat_slots(result.intent.name, slots)
        if name not in SUPPORTED_INTENTS:
            return None
        return Intent(name=name, slots=flat, source="templates", confidence=1.0)
