"""Questions the home answers from its state, never guessed: HassGetState,
HassClimateGetTemperature, HassGetCurrentTime, HassGetCurrentDate."""

from __future__ import annotations

from typing import Any

from assistant.errors import InvalidAction, UnknownDevice
from assistant.home import speech
from assistant.home.events import Outcome
from assistant.home.intents import Ctx, Handler
from assistant.home.model import DOMAINS, Device
from assistant.home.targets import Target, resolve

OPPOSITE = {"on": "off", "open": "closed", "locked": "unlocked", "playing": "paused"}
OPPOSITE |= {v: k for k, v in OPPOSITE.items()}
TEMPERATURE_UNITS = ("°C", "°F")
MAX_DESCRIBED = 6  # devices listed in one answer; more would be a lecture


def matches(device: Device, state: dict[str, Any], word: str) -> bool | None:
    """Whether the device is in HA state `word`; None when the word does not apply to it."""
    d, positive = device.domain, word in ("on", "open", "locked", "playing")
    if word in ("on", "off") and d in ("light", "switch", "fan"):
        return bool(state["on"]) == positive
    if word in ("on", "off", "playing", "paused") and d == "media_player":
        return bool(state["playing"]) == positive
    if word in ("open", "closed") and d == "cover":
        return bool(state["open"]) == positive
    if word in ("locked", "unlocked") and d == "lock":
        return bool(state["locked"]) == positive
    if d == "sensor" and word in OPPOSITE:
        value = state.get("value")
        if isinstance(value, bool):
            return value == positive if word in ("on", "off") else None
        if isinstance(value, str) and value.lower() in (word, OPPOSITE[word]):
            return value.lower() == word
    return None


async def get_state(ctx: Ctx) -> Outcome:
    home = ctx.service.home
    target = resolve(home, ctx.slots, tuple(DOMAINS), "answer", area_domains=tuple(DOMAINS))
    word = ctx.slots.get("state")
    states = {d.id: ctx.state(d) for d in target.devices}
    data: dict[str, Any] = {"states": states}
    if not word:
        shown = [speech.describe(d, states[d.id]) for d in target.devices[:MAX_DESCRIBED]]
        more = len(target.devices) - MAX_DESCRIBED
        if more > 0:
            shown.append(f"And {more} more.")
        return ctx.outcome(" ".join(shown), target, data=data)
    if not isinstance(word, str) or word not in OPPOSITE:
        raise InvalidAction(f"I can't tell whether something is {word!r}.")
    answers = {d.id: matches(d, states[d.id], word) for d in target.devices}
    applicable = [d for d in target.devices if answers[d.id] is not None]
    if not applicable:
        if len(target.devices) == 1:  # "is the thermostat on?": say what it is instead
            only = target.devices[0]
            return ctx.outcome(speech.describe(only, states[only.id]), target, data=data)
        where = f" in {speech.the(target.area)}" if target.area else ""
        return ctx.outcome(f"Nothing{where} can be {word}.", target, data=data)
    yes = [d for d in applicable if answers[d.id]]
    data["answer"] = bool(yes)
    data["matching"] = [d.id for d in yes]
    return ctx.outcome(_yes_no(target, applicable, yes, word, states), target, data=data)


def _yes_no(
    target: Target,
    applicable: list[Device],
    yes: list[Device],
    word: str,
    states: dict[str, dict[str, Any]],
) -> str:
    where = f" in {speech.the(target.area)}" if target.area else ""
    if len(yes) == 1:
        return f"Yes, {speech.the(yes[0])} is {word}."
    if len(yes) > 1:
        listed = ""
        if len(yes) <= 4:
            listed = ": " + speech.names([speech.the(d) for d in yes])
        return f"Yes, {len(yes)} {speech.noun(yes)} are {word}{where}{listed}."
    if len(applicable) == 1:
        only = applicable[0]
        return f"No, {speech.the(only)} is {speech.state_words(only, states[only.id])}."
    return f"No, no {speech.noun(applicable, 2)} are {word}{where}."


def _thermometers(ctx: Ctx, devices: tuple[Device, ...] | list[Device]) -> list[Device]:
    """The thermostats among `devices`, or else the temperature sensors."""
    climates = [d for d in devices if d.domain == "climate"]
    return climates or [
        d for d in devices if d.domain == "sensor" and ctx.state(d).get("unit") in TEMPERATURE_UNITS
    ]


async def get_temperature(ctx: Ctx) -> Outcome:
    home = ctx.service.home
    if ctx.slots.get("name") or ctx.slots.get("area"):
        try:
            target = resolve(home, ctx.slots, ("climate", "sensor"), "measure temperature")
        except UnknownDevice:
            area = home.area(str(ctx.slots.get("area")))
            if ctx.slots.get("name") or area is None:
                raise
            raise UnknownDevice(f"There's no thermometer in {speech.the(area)}.") from None
        devices = _thermometers(ctx, target.devices)
        if not devices:
            if target.area is not None:
                raise UnknownDevice(f"There's no thermometer in {speech.the(target.area)}.")
            raise InvalidAction(
                f"{speech.capital(speech.the(target.devices[0]))} doesn't measure temperature."
            )
    else:
        devices = _thermometers(ctx, list(home.devices))
        if not devices:
            raise UnknownDevice("There's no thermostat or thermometer in the home.")
        target = Target(tuple(devices), None)
    readings: dict[str, Any] = {}
    sentences = []
    for d in devices:
        st = ctx.state(d)
        value, unit = (
            (st["current_temperature"], st["unit"])
            if d.domain == "climate"
            else (st["value"], st["unit"])
        )
        readings[d.id] = {"temperature": value, "unit": unit}
        area = home.area(d.area) if d.area else None
        if value is None:
            sentences.append(f"I have no reading from {speech.the(d)} yet.")
        elif area is not None:
            sentences.append(f"It's {speech.measure(value, unit)} in {speech.the(area)}.")
        else:
            sentences.append(
                f"{speech.capital(speech.the(d))} reads {speech.measure(value, unit)}."
            )
    data = next(iter(readings.values())) if len(readings) == 1 else {"readings": readings}
    return ctx.outcome(" ".join(sentences), Target(tuple(devices), target.area), data=data)


async def current_time(ctx: Ctx) -> Outcome:
    now = ctx.service.now()
    return ctx.outcome(f"It's {speech.clock(now)}.", data={"time": now.isoformat()})


async def current_date(ctx: Ctx) -> Outcome:
    now = ctx.service.now()
    return ctx.outcome(f"Today is {speech.day(now)}.", data={"date": now.date().isoformat()})


QUERIES: dict[str, Handler] = {
    "HassGetState": get_state,
    "HassClimateGetTemperature": get_temperature,
    "HassGetCurrentTime": current_time,
    "HassGetCurrentDate": current_date,
}
