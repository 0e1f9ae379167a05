"""The short English the home answers with: device and group names, numbers, units, durations,
and one sentence per device state. Written for a voice: no ids, no symbols a TTS voice would
spell out ("°C" is said "degrees")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from assistant.home.model import Area, Device

NOUNS: dict[str, tuple[str, str]] = {  # domain or device class -> (singular, plural)
    "light": ("light", "lights"),
    "switch": ("switch", "switches"),
    "fan": ("fan", "fans"),
    "lock": ("lock", "locks"),
    "cover": ("cover", "covers"),
    "climate": ("thermostat", "thermostats"),
    "media_player": ("media player", "media players"),
    "sensor": ("sensor", "sensors"),
    "garage": ("garage door", "garage doors"),
    "door": ("door", "doors"),
    "window": ("window", "windows"),
    "blind": ("blind", "blinds"),
    "curtain": ("curtain", "curtains"),
    "shutter": ("shutter", "shutters"),
    "awning": ("awning", "awnings"),
    "gate": ("gate", "gates"),
}
UNITS = {
    "°C": "degrees",
    "°F": "degrees",
    "%": "percent",
    "W": "watts",
    "kW": "kilowatts",
    "kWh": "kilowatt hours",
    "lx": "lux",
    "ppm": "parts per million",
    "hPa": "hectopascals",
    "V": "volts",
    "A": "amps",
}


def lower_first(name: str) -> str:
    """ "Kitchen light" -> "kitchen light"; "TV" stays "TV" (an acronym)."""
    if len(name) > 1 and name[1].isupper():
        return name
    return name[:1].lower() + name[1:]


def the(device: Device | Area) -> str:
    name = lower_first(device.name)
    return name if name.lower().startswith(("the ", "my ")) else f"the {name}"


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def noun(devices: Sequence[Device], n: int | None = None) -> str:
    """The word for these devices, singular or plural by `n` (default: how many there are)."""
    count = len(devices) if n is None else n
    classes = {d.device_class for d in devices}
    domains = {d.domain for d in devices}
    key = None
    if len(classes) == 1 and (c := next(iter(classes))) in NOUNS:
        key = c
    elif len(domains) == 1:
        key = next(iter(domains))
    singular, plural = NOUNS.get(key or "", ("device", "devices"))
    return singular if count == 1 else plural


def group(devices: Sequence[Device], area: Area | None = None) -> str:
    """ "the kitchen light" for one device, "3 lights in the kitchen" for several."""
    if len(devices) == 1:
        return the(devices[0])
    where = f" in {the(area)}" if area is not None else ""
    return f"{len(devices)} {noun(devices)}{where}"


def names(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def measure(value: Any, unit: str) -> str:
    """A reading as said aloud: 21.5 °C -> "21.5 degrees"."""
    if isinstance(value, bool):
        value_text = "on" if value else "off"
    elif isinstance(value, int | float):
        value_text = number(value)
    else:
        value_text = str(value)
    words = UNITS.get(unit, unit)
    return f"{value_text} {words}".strip()


def duration(seconds: float) -> str:
    """Whole seconds, said: 5400 -> "1 hour and 30 minutes"; 90 -> "1 minute and 30 seconds"."""
    total = max(0, math.ceil(seconds - 1e-6))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    parts = [
        f"{v} {unit}{'' if v == 1 else 's'}"
        for v, unit in ((h, "hour"), (m, "minute"), (s, "second"))
        if v
    ]
    return names(parts) if parts else "0 seconds"


def left(seconds: float) -> str:
    """Time left, as precise as is useful: seconds under 10 minutes, minutes above."""
    if seconds >= 600:
        return duration(round(seconds / 60) * 60)
    return duration(seconds)


def clock(now: datetime) -> str:
    """ "3:05 PM"."""
    hour = now.hour % 12 or 12
    return f"{hour}:{now.minute:02d} {'AM' if now.hour < 12 else 'PM'}"


def day(now: datetime) -> str:
    """ "Tuesday, March 4, 2025"."""
    return f"{now:%A}, {now:%B} {now.day}, {now.year}"


def state_words(device: Device, state: dict[str, Any]) -> str:
    """What a device is doing, after "is": "on at 80 percent", "locked", "set to 21 degrees"."""
    d = device.domain
    if d == "light":
        return f"on at {state['brightness']} percent" if state["on"] else "off"
    if d == "fan":
        return f"on at {state['percentage']} percent" if state["on"] else "off"
    if d == "switch":
        return "on" if state["on"] else "off"
    if d == "lock":
        return "locked" if state["locked"] else "unlocked"
    if d == "cover":
        if not state["open"]:
            return "closed"
        return "open" if state["position"] == 100 else f"{state['position']} percent open"
    if d == "climate":
        target = f"set to {measure(state['target_temperature'], state['unit'])}"
        if state.get("current_temperature") is None:
            return target
        return f"{target}, and it is {measure(state['current_temperature'], state['unit'])} now"
    if d == "media_player":
        doing = "playing" if state["playing"] else "paused"
        return f"{doing} track {state['track']} at volume {state['volume']}"
    return measure(state["value"], state["unit"])


def describe(device: Device, state: dict[str, Any]) -> str:
    """One sentence: "The kitchen light is on at 80 percent."."""
    if device.domain == "sensor" and state.get("value") is None:
        return f"I have no reading from {the(device)} yet."
    return f"{capital(the(device))} is {state_words(device, state)}."
