"""Slot filling for the classifier's intents: which device, area, number and direction a free
sentence names, as INTENTS.md's flat slots.

`SlotFiller(home).fill(intent_name, text, area=None)` returns the slots, or None when the intent
lacks what it needs to act (then the sentence goes to the conversation, never a guessed action):

- HassTurnOn / HassTurnOff / HassGetState: a target (`name`, `area` or `domain`);
- HassLightSet: a light (`name`, `area`, or the home's only light) and `brightness` or
  `brightness_step`; HassSetPosition / HassFanSetSpeed: a cover / fan (or the home's only one)
  and `position` / `percentage`;
- HassClimateSetTemperature: `temperature` or `temperature_step` (target optional);
  HassSetVolume: `volume_level` or `volume_step` (target optional);
- HassStartTimer: `hours`, `minutes` or `seconds`; every other intent: nothing.

How the text is read:
- names: a device's or area's name or alias, word by word, singular and plural alike ("kitchen
  lights" finds the device "Kitchen light"); the longest name wins, and a device only counts when
  the intent acts on its domain (a climate intent ignores "Kitchen light"). An area is read
  outside the device's words; when it contradicts the device, the device wins.
- numbers: digits, "%", "°", spoken numbers (numbers.py); "half" is 50 (brightness, volume,
  position, speed) or half an hour / a minute (timers); "max"/"full" 100, "min" 1.
- relative words set the signed *_step slots: brighter/dimmer, warmer/cooler ("too cold" is
  warmer), louder/quieter, up/down. The size is the number said after "by" (or with no "to"),
  else a default (brightness 20, temperature 1, volume 10), halved after "a bit"/"slightly",
  doubled after "a lot"/"much".
- `area`: the area the voice came from (a satellite's room), used when the text names no target;
  without it, a command for every device of a kind "in here" lacks its target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistant.home.model import Device, Home
from assistant.voice.intent.numbers import NumberSpan, duration_seconds, find_numbers, tokenize
from assistant.voice.intent.templates import HERE, TARGET_INTENTS, device_class
from assistant.voice.intent.words import (
    BIG,
    COMPLAINT,
    DEFAULT_STEP,
    DOMAIN_NOUN,
    DOMAIN_WORDS,
    DOWN,
    MAX,
    MIN,
    RELATIVE,
    SMALL,
    STATE_WORDS,
    UP,
    Found,
    find_all,
    is_verb,
    name_words,
    singular,
)

# Domains each intent may act on: a device name only fills `name` for these.
INTENT_DOMAINS: dict[str, frozenset[str]] = {
    "HassTurnOn": frozenset({"light", "switch", "fan", "cover", "lock", "media_player", "climate"}),
    "HassTurnOff": frozenset(
        {"light", "switch", "fan", "cover", "lock", "media_player", "climate"}
    ),
    "HassGetState": frozenset(
        {"light", "switch", "fan", "cover", "lock", "media_player", "climate", "sensor"}
    ),
    "HassLightSet": frozenset({"light"}),
    "HassSetPosition": frozenset({"cover"}),
    "HassFanSetSpeed": frozenset({"fan"}),
    "HassClimateSetTemperature": frozenset({"climate"}),
    "HassClimateGetTemperature": frozenset({"climate", "sensor"}),
    "HassSetVolume": frozenset({"media_player"}),
    "HassMediaPause": frozenset({"media_player"}),
    "HassMediaUnpause": frozenset({"media_player"}),
    "HassMediaNext": frozenset({"media_player"}),
    "HassMediaPrevious": frozenset({"media_player"}),
}


class SlotFiller:
    """Reads INTENTS.md's flat slots for an intent out of a free sentence (see the module doc)."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._devices = {device.id: device for device in home.devices}
        self._device_names = [
            (words, d.id) for d in home.devices for n in d.names if (words := name_words(n))
        ]
        self._area_names = [
            (words, a.id) for a in home.areas for n in a.names if (words := name_words(n))
        ]

    def delexicalize(self, text: str) -> str:
        """`text` in lower case with every device name replaced by its domain's noun ("the
        desk lamp" -> "the light", a garage door -> "garage door") and every area name by
        "room": the classifier then learns the wording of a request, not this home's names."""
        tokens = tokenize(text)
        words = tuple(singular(token) for token in tokens)
        names = [(n, "device:" + t) for n, t in self._device_names]
        names += [(n, "area:" + t) for n, t in self._area_names]
        chosen: list[Found] = []
        for found in find_all(words, names):
            if not any(found.overlaps(other) for other in chosen):
                chosen.append(found)
        for found in sorted(chosen, key=lambda f: -f.start):
            kind, target = found.target.split(":", 1)
            noun = "room"
            if kind == "device":
                device = self._devices[target]
                noun = DOMAIN_NOUN.get(device.domain, device.domain)
                if device.domain == "cover" and device_class(device) in ("garage", "gate"):
                    noun = "garage door" if device_class(device) == "garage" else "gate"
            tokens[found.start : found.end] = [noun]
        return " ".join(tokens)

    def fill(self, intent: str, text: str, area: str | None = None) -> dict[str, Any] | None:
        """The flat slots of `intent` in `text`, or None when a needed slot is missing."""
        tokens = tokenize(text)
        words = tuple(singular(token) for token in tokens)
        device, area_id, used = self._target(intent, words, tokens)
        domain = next(
            (
                DOMAIN_WORDS[w]
                for i, w in enumerate(words)
                if w in DOMAIN_WORDS and not is_verb(i, words)
            ),
            None,
        )
        free = [
            span for span in find_numbers(tokens) if not any(s <= span.start < e for s, e in used)
        ]
        slots: dict[str, Any] = {}
        if device is not None:
            slots["name"] = device.id
        if area_id is not None:
            slots["area"] = area_id
        elif device is None and area is not None:
            slots["area"] = area  # the satellite's room
        has_target = "name" in slots or "area" in slots
        if not has_target and intent in TARGET_INTENTS and HERE.search(text):
            return None  # "in here", and the room the voice came from is unknown

        if intent in ("HassTurnOn", "HassTurnOff", "HassGetState"):
            if device is None and domain is not None:
                slots["domain"] = domain
            if not has_target and intent != "HassGetState":
                # a domain alone would switch every such device in the home: only when the
                # home has just one (the templates handle "turn off all the lights")
                one = domain is not None and sum(d.domain == domain for d in self.home.devices) == 1
                if not one:
                    return None
            if intent == "HassGetState":
                state = next((STATE_WORDS[w] for w in reversed(words) if w in STATE_WORDS), None)
                if state is not None:
                    slots["state"] = state
            return slots if has_target or "domain" in slots else None
        if intent == "HassLightSet":
            return self._level(slots, "light", tokens, words, free, "brightness", "brightness_step")
        if intent == "HassSetPosition":
            return self._level(slots, "cover", tokens, words, free, "position", None)
        if intent == "HassFanSetSpeed":
            return self._level(slots, "fan", tokens, words, free, "percentage", None)
        if intent == "HassSetVolume":
            found = self._value(tokens, words, free, "volume_step", integer=True)
            if found is None:
                return None
            key, value = found
            if key == "volume_step":
                slots[key] = value
            else:
                slots["volume_level"] = max(0, min(100, value))
            return slots
        if intent in ("HassClimateSetTemperature", "HassClimateGetTemperature"):
            if (
                intent == "HassClimateSetTemperature"
                and "area" in slots
                and not self.home.in_area(slots["area"], "climate")
            ):
                del slots["area"]  # "too cold in the kitchen": the home's thermostat, wherever
            if intent == "HassClimateGetTemperature":
                return slots
            found = self._value(tokens, words, free, "temperature_step", integer=False)
            if found is None:
                return None
            slots[found[0] if found[0] == "temperature_step" else "temperature"] = found[1]
            return slots
        if intent in ("HassStartTimer", "HassCancelTimer", "HassTimerStatus"):
            return self._timer(intent, tokens, words, free)
        if intent in INTENT_DOMAINS:  # media intents: target optional
            return slots
        return {}

    def _target(
        self, intent: str, words: tuple[str, ...], tokens: list[str]
    ) -> tuple[Device | None, str | None, list[tuple[int, int]]]:
        """The device (of a domain the intent acts on) and the area named, and their spans. A
        singular device name said in the plural ("the kitchen lights" for the device "Kitchen
        light") means the lights of that area when it has several."""
        domains = INTENT_DOMAINS.get(intent, frozenset())
        areas = find_all(words, self._area_names)
        devices = [
            f
            for f in find_all(words, self._device_names)
            if self._devices[f.target].domain in domains
        ]
        device_found = None
        if devices:
            longest = [f for f in devices if f.end - f.start == devices[0].end - devices[0].start]
            # two devices of the same name: the one in the area said elsewhere in the sentence
            said = {a.target for a in areas if not a.overlaps(longest[0])}
            device_found = next(
                (f for f in longest if self._devices[f.target].area in said), longest[0]
            )
        area_found = next(
            (a for a in areas if device_found is None or not a.overlaps(device_found)), None
        )
        device = self._devices[device_found.target] if device_found else None
        area_id = area_found.target if area_found else None
        if device is not None and device_found is not None and device.area is not None:
            said_last = tokens[device_found.end - 1]
            named_last = tokenize(device.name)[-1] if tokenize(device.name) else ""
            plural = said_last != singular(said_last) and named_last == singular(named_last)
            if plural and len(self.home.in_area(device.area, device.domain)) > 1:
                area_id = device.area
                device = None
        if device is not None and area_id is not None and device.area != area_id:
            area_id = None
        used = [(f.start, f.end) for f in (device_found, area_found) if f is not None]
        return device, area_id, used

    def _level(
        self,
        slots: dict[str, Any],
        domain: str,
        tokens: list[str],
        words: tuple[str, ...],
        free: list[NumberSpan],
        absolute: str,
        step: str | None,
    ) -> dict[str, Any] | None:
        """A 0-100 level (or a step) for a target of `domain`; None when either is missing."""
        if "name" not in slots and "area" not in slots:
            only = [d for d in self.home.devices if d.domain == domain]
            if len(only) != 1:
                return None
            slots["name"] = only[0].id
        if "name" not in slots:
            slots["domain"] = domain
        found = self._value(tokens, words, free, step, integer=True)
        if found is None:
            return None
        key, value = found
        if key != step:
            key, value = absolute, max(0, min(100, value))
        slots[key] = value
        return slots

    def _value(
        self,
        tokens: list[str],
        words: tuple[str, ...],
        free: list[NumberSpan],
        step: str | None,
        *,
        integer: bool,
    ) -> tuple[str, int | float] | None:
        """("absolute", value) or (step slot, signed value) said in the text, or None."""
        direction = _direction(tokens, step) if step else 0
        number: int | float | None = None
        by = False
        if free:
            span = free[0]
            before = tokens[span.start - 1] if span.start > 0 else ""
            number, by = span.value, before == "by" or (direction != 0 and before != "to")
        elif "half" in words or "halfway" in words:
            number = 50
        elif MAX & set(words):
            number = 100
        elif MIN & set(words):
            number = 1
        if step and direction and (number is None or by):
            size = abs(number) if number is not None else DEFAULT_STEP[step]
            if number is None and SMALL & set(words):
                size = size / 2
            elif number is None and BIG & set(words):
                size = size * 2
            signed = direction * size
            return step, round(signed) if integer else float(signed)
        if number is None:
            return None
        return "absolute", round(number) if integer else float(number)

    def _timer(
        self, intent: str, tokens: list[str], words: tuple[str, ...], free: list[NumberSpan]
    ) -> dict[str, Any] | None:
        seconds = duration_seconds(words, free)
        prefix = "" if intent == "HassStartTimer" else "start_"
        slots: dict[str, Any] = {}
        if seconds:
            hours, rest = divmod(round(seconds), 3600)
            minutes, secs = divmod(rest, 60)
            for key, value in (("hours", hours), ("minutes", minutes), ("seconds", secs)):
                if value:
                    slots[prefix + key] = value
        for marker in ("called", "named"):
            if marker in tokens[:-1]:
                slots["name"] = " ".join(tokens[tokens.index(marker) + 1 :])
        if intent == "HassStartTimer" and not seconds:
            return None
        return slots


def _direction(words: Sequence[str], step: str) -> int:
    """+1 / -1 when `words` (tokens, not singular: "it's" must stay) ask for more / less of
    `step`'s quantity, else 0."""
    up, down, too_up, too_down = RELATIVE[step]
    for i, word in enumerate(words[:-1]):
        if word in COMPLAINT:
            if words[i + 1] in too_up:
                return 1
            if words[i + 1] in too_down:
                return -1
    for more, less in ((up, down), (UP, DOWN)):
        for word in words:
            if word in more:
                return 1
            if word in less:
                return -1
    return 0
