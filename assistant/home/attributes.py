"""What each domain's state holds, its defaults and ranges, and the one validation every change
goes through: the home file's initial state, `POST /v1/home/devices/{id}` and spoken commands.

`apply(device, current, requested)` returns the device's whole new state or raises
`InvalidAction` with a message that says what is allowed. Messages name the device by its
spoken name, so the voice path can say them as they are.

Coupled attributes stay consistent whichever one a request sets:
- light / fan: `brightness` / `percentage` 0 turns it off, > 0 turns it on; turning on a light
  or fan whose level is 0 sets the level to 100 (in the home file a level does not switch the
  device on: `{brightness: 30}` is a light that is off and comes on at 30);
- cover: `position` 0 is closed, > 0 open; `open: true` alone moves to 100, `open: false` to 0.
Asking for both halves of a pair in contradiction (`{"on": true, "brightness": 0}`) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from assistant.errors import InvalidAction
from assistant.home import speech
from assistant.home.model import DOMAINS, Device

Kind = Literal["bool", "int", "float", "text", "value"]

# Thermostat set points a household asks for; HA's climate defaults are 7-35 °C.
CLIMATE_RANGE = {"°C": (5.0, 35.0), "°F": (41.0, 95.0)}


@dataclass(frozen=True)
class Attr:
    kind: Kind
    default: Any
    low: float | None = None
    high: float | None = None
    read_only: bool = False  # set by the device itself (or the home file), never by a request
    choices: tuple[str, ...] = ()


LEVEL = Attr("int", 100, 0, 100)
SPECS: dict[str, dict[str, Attr]] = {
    "light": {"on": Attr("bool", False), "brightness": LEVEL},
    "switch": {"on": Attr("bool", False)},
    "fan": {"on": Attr("bool", False), "percentage": LEVEL},
    "lock": {"locked": Attr("bool", True)},
    "cover": {"open": Attr("bool", False), "position": Attr("int", 0, 0, 100)},
    "climate": {
        "target_temperature": Attr("float", 21.0),  # range by unit: CLIMATE_RANGE
        "current_temperature": Attr("float", None, -60.0, 150.0, read_only=True),
        "unit": Attr("text", "°C", read_only=True, choices=tuple(CLIMATE_RANGE)),
    },
    "media_player": {
        "playing": Attr("bool", False),
        "volume": Attr("int", 50, 0, 100),
        "track": Attr("int", 1, 1, None),  # position in the player's queue, from 1
    },
    "sensor": {
        "value": Attr("value", None, read_only=True),
        "unit": Attr("text", "", read_only=True),
    },
}
assert {d: tuple(s) for d, s in SPECS.items()} == DOMAINS, "SPECS and model.DOMAINS disagree"

# The level attribute that `on` follows, per domain.
LEVELS = {"light": "brightness", "fan": "percentage"}


def _the(device: Device, lower: bool = False) -> str:
    """The device as a sentence names it: "The kitchen light" (or "the ..." mid-sentence)."""
    text = speech.the(device)
    return text if lower else speech.capital(text)


def defaults(domain: str) -> dict[str, Any]:
    return {name: spec.default for name, spec in SPECS[domain].items()}


def allowed(domain: str, *, include_read_only: bool = False) -> list[str]:
    return [n for n, s in SPECS[domain].items() if include_read_only or not s.read_only]


def _range_text(low: float | None, high: float | None) -> str:
    if high is None:
        return f"a whole number from {low:g}"
    return f"{low:g} to {high:g}"


def check_value(device: Device, name: str, value: Any, unit: str | None = None) -> Any:
    """One attribute's value, normalised (whole numbers as int, temperatures to 0.1 degree);
    `unit` is the climate's unit that sets the temperature range."""
    spec = SPECS[device.domain][name]
    what = f"{_the(device)}'s {name.replace('_', ' ')}"
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidAction(f"{what} is true or false, not {value!r}")
        return value
    if spec.kind == "text":
        if not isinstance(value, str):
            raise InvalidAction(f"{what} is text, not {value!r}")
        if spec.choices and value not in spec.choices:
            raise InvalidAction(f"{what} is one of {', '.join(spec.choices)}, not {value!r}")
        return value
    if spec.kind == "value":
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidAction(f"{what} is a number, text or true/false, not {value!r}")
        return value
    if value is None and spec.default is None:  # e.g. a thermostat that has not measured yet
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidAction(f"{what} is a number, not {value!r}")
    low, high = spec.low, spec.high
    if name == "target_temperature":
        low, high = CLIMATE_RANGE.get(unit or "°C", CLIMATE_RANGE["°C"])
    if spec.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise InvalidAction(f"{what} is a whole number, not {value:g}")
        value = int(value)
    else:
        value = round(float(value), 1)
    if (low is not None and value < low) or (high is not None and value > high):
        unit_text = " degrees" if name == "target_temperature" else ""
        raise InvalidAction(
            f"{what} goes from {_range_text(low, high)}{unit_text}, not {value:g}"
            if high is not None
            else f"{what} is {_range_text(low, high)}, not {value:g}"
        )
    return value


def apply(
    device: Device, current: dict[str, Any], requested: dict[str, Any], *, from_file: bool = False
) -> dict[str, Any]:
    """The device's whole state after `requested`; `from_file` lets the home file set the
    attributes a request may not (a sensor's value, a thermostat's measured temperature)."""
    domain = device.domain
    spec = SPECS[domain]
    if not requested:
        raise InvalidAction(
            f"nothing to set on {_the(device, lower=True)} ({device.id}); it takes: "
            f"{', '.join(allowed(domain)) or 'nothing (it is read-only)'}"
        )
    for name in requested:
        if name not in spec:
            raise InvalidAction(
                f"{_the(device)} ({device.id}) has no attribute {name!r}; a {domain} takes: "
                f"{', '.join(allowed(domain, include_read_only=from_file)) or 'nothing'}"
            )
        if spec[name].read_only and not from_file:
            if not allowed(domain):
                raise InvalidAction(
                    f"{_the(device)} is a {domain.replace('_', ' ')} and read-only: its "
                    "readings come from the device"
                )
            raise InvalidAction(
                f"{_the(device)}'s {name.replace('_', ' ')} is read-only; you can set: "
                f"{', '.join(allowed(domain))}"
            )
    unit = requested.get("unit", current.get("unit"))
    if domain == "climate" and "unit" in requested:
        unit = check_value(device, "unit", requested["unit"])
    new = dict(current)
    for name, value in requested.items():
        new[name] = check_value(device, name, value, unit)
    _couple(device, new, requested, from_file)
    return new


def _couple(
    device: Device, new: dict[str, Any], requested: dict[str, Any], from_file: bool
) -> None:
    domain = device.domain
    if domain in LEVELS:
        level = LEVELS[domain]
        if level in requested and "on" in requested:
            if requested["on"] and new[level] == 0:
                raise InvalidAction(
                    f"{level} 0 turns {_the(device, lower=True)} off; ask for on: false, "
                    f"or a {level} from 1 to 100"
                )
        elif level in requested and not from_file:  # the file describes; a request acts
            new["on"] = new[level] > 0
        if new["on"] and new[level] == 0:
            new[level] = 100
    elif domain == "cover":
        if "position" in requested and "open" in requested:
            if new["open"] != (new["position"] > 0):
                raise InvalidAction(
                    f"{_the(device)} cannot be {'open' if new['open'] else 'closed'} at position "
                    f"{new['position']}: position 0 is closed, 1 to 100 open"
                )
        elif "position" in requested:
            new["open"] = new["position"] > 0
        elif "open" in requested:
            new["position"] = 100 if new["open"] else 0
