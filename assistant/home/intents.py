"""Carrying out the intents of INTENTS.md: one handler per intent, each answering with what a
voice assistant says ("Turned on the kitchen light.", "Set 3 lights in the kitchen to 30
percent.", "The garage door is already closed.").

Device changes go through `HomeService.apply` (the validation `POST /v1/home/devices/{id}`
uses). A refusal (`HomeError`) or Home Assistant's failure becomes the Outcome's `error`, said
in its `speech`; `handle` never raises for what the household asked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assistant.errors import HomeError, InvalidAction, Unavailable
from assistant.home import speech
from assistant.home.events import Outcome
from assistant.home.model import Device, Intent
from assistant.home.targets import SWITCHABLE, Target, resolve

if TYPE_CHECKING:
    from assistant.home.actions import HomeService

log = logging.getLogger(__name__)

# domain -> (verb on, verb off, word on, word off)
ON_OFF: dict[str, tuple[str, str, str, str]] = {
    "light": ("Turned on", "Turned off", "on", "off"),
    "switch": ("Turned on", "Turned off", "on", "off"),
    "fan": ("Turned on", "Turned off", "on", "off"),
    "cover": ("Opened", "Closed", "open", "closed"),
    "lock": ("Locked", "Unlocked", "locked", "unlocked"),
    "media_player": ("Resumed", "Paused", "playing", "paused"),
}
ON_KEY = {
    "light": "on",
    "switch": "on",
    "fan": "on",
    "cover": "open",
    "lock": "locked",
    "media_player": "playing",
}


@dataclass(frozen=True)
class Ctx:
    service: HomeService
    intent: Intent
    request_id: str

    @property
    def slots(self) -> dict[str, Any]:
        return self.intent.slots

    @property
    def source(self) -> str:
        return f"voice/{self.intent.source}"

    def state(self, device: Device) -> dict[str, Any]:
        return self.service.state.get(device.id)

    def number(self, key: str, *, whole: bool = True) -> float | None:
        value = self.slots.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidAction(f"the slot {key!r} must be a number, not {value!r}")
        if whole and isinstance(value, float) and not value.is_integer():
            raise InvalidAction(f"the slot {key!r} must be a whole number, not {value:g}")
        return int(value) if whole else float(value)

    def outcome(self, speech_: str, target: Target | None = None, **kw: Any) -> Outcome:
        return Outcome(self.intent.name, speech_, targets=target.ids if target else (), **kw)


Handler = Callable[[Ctx], Awaitable[Outcome]]


async def handle(service: HomeService, intent: Intent, request_id: str) -> Outcome:
    from assistant.home.queries import QUERIES
    from assistant.home.timer_intents import TIMER_INTENTS

    handlers: dict[str, Handler] = {**CONTROLS, **QUERIES, **TIMER_INTENTS}
    handler = handlers.get(intent.name)
    if handler is None:
        log.warning("home: intent %s is not one the home handles", intent.name)
        error = InvalidAction(
            f"{intent.name} is not an intent the home handles; it handles: {', '.join(handlers)}"
        )
        return Outcome(intent.name, "Sorry, I can't do that.", error=error)
    try:
        return await handler(Ctx(service, intent, request_id))
    except HomeError as exc:
        return Outcome(intent.name, _sentence(str(exc)), error=exc)


def _sentence(text: str) -> str:
    text = speech.capital(text.strip())
    return text if text.endswith((".", "?", "!")) else text + "."


async def change(
    ctx: Ctx,
    target: Target,
    requests: dict[str, dict[str, Any]],
    said: Callable[[list[Device]], str],
    unchanged: Callable[[], str] | None = None,
) -> Outcome:
    """Apply `requests`; `said(changed devices)` words what changed, `unchanged()` the answer
    when nothing needed to (default: the state of the target)."""
    changes, error = await ctx.service.apply(requests, ctx.request_id, ctx.source)
    changed_ids = list(dict.fromkeys(c.device for c in changes))
    changed = [d for d in target.devices if d.id in changed_ids]
    if error is not None:
        return ctx.outcome(
            _failure(target, changed, error), target, changes=tuple(changes), error=error
        )
    if not changed:
        text = unchanged() if unchanged else already(ctx, target)
        return ctx.outcome(text, target)
    return ctx.outcome(said(changed), target, changes=tuple(changes))


def _failure(target: Target, changed: list[Device], error: HomeError | Unavailable) -> str:
    rest = [d for d in target.devices if d not in changed]
    rest_phrase = speech.group(rest, target.area) if len(rest) > 1 else speech.the(rest[0])
    if isinstance(error, Unavailable):
        why = "I couldn't reach Home Assistant"
    else:
        why = "Home Assistant refused"
    only = f"; only {speech.group(changed, target.area)} changed" if changed else ""
    return f"{why}, so {rest_phrase} {'is' if len(rest) == 1 else 'are'} unchanged{only}."


def already(ctx: Ctx, target: Target) -> str:
    if len(target.devices) == 1:
        device = target.devices[0]
        return f"{speech.capital(speech.the(device))} is already {_words(device, ctx)}."
    where = f" in {speech.the(target.area)}" if target.area else ""
    words = {_words(d, ctx) for d in target.devices}
    how = next(iter(words)) if len(words) == 1 else "set that way"
    return f"The {speech.noun(target.devices)}{where} are already {how}."


def _words(device: Device, ctx: Ctx) -> str:
    return speech.state_words(device, ctx.state(device))


def _verb(devices: list[Device], on: bool) -> str:
    domains = {d.domain for d in devices}
    table = ON_OFF[next(iter(domains))] if len(domains) == 1 else ON_OFF["light"]
    return table[0] if on else table[1]


def _did(verb: str, devices: list[Device], target: Target, tail: str = "") -> str:
    """ "Turned on the kitchen light." / "Turned on 3 lights in the kitchen."."""
    return f"{verb} {speech.group(devices, target.area)}{tail}."


# ----- on / off -----


async def _turn(ctx: Ctx, on: bool) -> Outcome:
    target = resolve(
        ctx.service.home,
        ctx.slots,
        tuple(ON_OFF),
        f"be turned {'on' if on else 'off'}",
        area_domains=SWITCHABLE,
    )
    # a cover's `open` alone moves it all the way (attributes._couple): 100 on, 0 off
    requests = {d.id: {ON_KEY[d.domain]: on} for d in target.devices}
    return await change(ctx, target, requests, lambda ds: _did(_verb(ds, on), ds, target))


async def turn_on(ctx: Ctx) -> Outcome:
    return await _turn(ctx, True)


async def turn_off(ctx: Ctx) -> Outcome:
    return await _turn(ctx, False)


# ----- levels: brightness, position, fan speed, volume, temperature -----


def _stepped(current: float, step: float, low: float, high: float) -> float:
    return min(high, max(low, current + step))


async def light_set(ctx: Ctx) -> Outcome:
    target = resolve(ctx.service.home, ctx.slots, ("light",), "be dimmed")
    level, step = ctx.number("brightness"), ctx.number("brightness_step")
    requests: dict[str, dict[str, Any]] = {}
    if level is not None:
        requests = {d.id: {"brightness": level} for d in target.devices}
    elif step is not None:
        for d in target.devices:
            st = ctx.state(d)
            if step < 0 and not st["on"]:
                continue  # "dimmer" never turns a light on
            current = st["brightness"] if st["on"] else 0
            # dimming stops at 1 percent: "dimmer" should not switch the light off
            requests[d.id] = {"brightness": int(_stepped(current, step, 1, 100))}
    else:
        raise InvalidAction("Say a brightness from 0 to 100 percent.")

    def said(ds: list[Device]) -> str:
        if level == 0:
            return _did("Turned off", ds, target)
        if level is not None:
            return _did("Set", ds, target, f" to {level} percent")
        verb = "Brightened" if step and step > 0 else "Dimmed"
        tail = f" to {ctx.state(ds[0])['brightness']} percent" if len(ds) == 1 else ""
        return _did(verb, ds, target, tail)

    return await change(ctx, target, requests, said)


async def set_position(ctx: Ctx) -> Outcome:
    target = resolve(ctx.service.home, ctx.slots, ("cover",), "open or close")
    position = ctx.number("position")
    if position is None:
        raise InvalidAction("Say a position from 0 (closed) to 100 (open) percent.")
    requests = {d.id: {"position": position} for d in target.devices}

    def said(ds: list[Device]) -> str:
        if position in (0, 100):
            return _did("Closed" if position == 0 else "Opened", ds, target)
        return _did("Set", ds, target, f" to {position} percent open")

    return await change(ctx, target, requests, said)


async def fan_set_speed(ctx: Ctx) -> Outcome:
    target = resolve(ctx.service.home, ctx.slots, ("fan",), "change speed")
    speed = ctx.number("percentage")
    if speed is None:
        raise InvalidAction("Say a fan speed from 0 to 100 percent.")
    requests = {d.id: {"percentage": speed} for d in target.devices}

    def said(ds: list[Device]) -> str:
        if speed == 0:
            return _did("Turned off", ds, target)
        return _did("Set", ds, target, f" to {speed} percent")

    return await change(ctx, target, requests, said)


async def set_temperature(ctx: Ctx) -> Outcome:
    target = resolve(ctx.service.home, ctx.slots, ("climate",), "change temperature", only_one=True)
    degrees = ctx.number("temperature", whole=False)
    step = ctx.number("temperature_step", whole=False)
    if degrees is None and step is None:
        raise InvalidAction("Say a temperature, for example 21 degrees.")
    requests = {
        d.id: {
            "target_temperature": degrees
            if degrees is not None
            else ctx.state(d)["target_temperature"] + (step or 0)
        }
        for d in target.devices
    }

    def said(ds: list[Device]) -> str:
        st = ctx.state(ds[0])
        tail = f" to {speech.measure(st['target_temperature'], st['unit'])}"
        if degrees is not None:
            return _did("Set", ds, target, tail)
        return _did("Raised" if (step or 0) > 0 else "Lowered", ds, target, tail)

    return await change(ctx, target, requests, said)


async def set_volume(ctx: Ctx) -> Outcome:
    target = resolve(ctx.service.home, ctx.slots, ("media_player",), "change volume", only_one=True)
    level, step = ctx.number("volume_level"), ctx.number("volume_step")
    if level is not None:
        requests = {d.id: {"volume": level} for d in target.devices}
    elif step is not None:
        requests = {
            d.id: {"volume": int(_stepped(ctx.state(d)["volume"], step, 0, 100))}
            for d in target.devices
        }
    else:
        raise InvalidAction("Say a volume from 0 to 100 percent.")

    def said(ds: list[Device]) -> str:
        volume = ctx.state(ds[0])["volume"]
        if level is not None or len(ds) > 1:
            what = speech.group(ds, target.area)
            tail = f" to {volume} percent" if len(ds) == 1 or level is not None else ""
            return f"Set the volume of {what}{tail}."
        direction = "up" if (step or 0) > 0 else "down"
        return f"Turned {speech.the(ds[0])} {direction} to {volume} percent."

    return await change(ctx, target, requests, said)


# ----- media -----


def _players(ctx: Ctx, action: str, playing: bool | None) -> Target | None:
    """The players a media intent means: the named ones; else the only one; else those that
    are playing (`playing=True`) or paused (`playing=False`). None: nothing is playing."""
    if any(ctx.slots.get(k) for k in ("name", "area", "domain", "device_class")):
        return resolve(ctx.service.home, ctx.slots, ("media_player",), action)
    players = [d for d in ctx.service.home.devices if d.domain == "media_player"]
    if len(players) > 1 and playing is not None:
        matching = tuple(d for d in players if ctx.state(d)["playing"] == playing)
        if matching and (playing or len(matching) == 1):
            return Target(matching, None)
        if playing and not matching:
            return None
    return resolve(ctx.service.home, ctx.slots, ("media_player",), action, only_one=True)


async def _media_play(ctx: Ctx, play: bool) -> Outcome:
    target = _players(ctx, "play or pause", playing=not play)
    if target is None:
        return ctx.outcome("Nothing is playing.")
    requests = {d.id: {"playing": play} for d in target.devices}
    return await change(
        ctx, target, requests, lambda ds: _did("Resumed" if play else "Paused", ds, target)
    )


async def media_pause(ctx: Ctx) -> Outcome:
    return await _media_play(ctx, False)


async def media_unpause(ctx: Ctx) -> Outcome:
    return await _media_play(ctx, True)


async def _media_skip(ctx: Ctx, step: int) -> Outcome:
    target = _players(ctx, "change track", playing=True)
    if target is None:
        return ctx.outcome("Nothing is playing.")
    requests = {d.id: {"track": max(1, ctx.state(d)["track"] + step)} for d in target.devices}

    def said(ds: list[Device]) -> str:
        verb = "Skipped to" if step > 0 else "Went back to"
        if len(ds) == 1:
            return f"{verb} track {ctx.state(ds[0])['track']} on {speech.the(ds[0])}."
        which = "the next" if step > 0 else "the previous"
        return f"{verb} {which} track on {speech.group(ds, target.area)}."

    def unchanged() -> str:
        return (
            f"{speech.capital(target.phrase())} {'is' if len(target.devices) == 1 else 'are'} "
            "already on the first track."
        )

    return await change(ctx, target, requests, said, unchanged)


async def media_next(ctx: Ctx) -> Outcome:
    return await _media_skip(ctx, 1)


async def media_previous(ctx: Ctx) -> Outcome:
    return await _media_skip(ctx, -1)


async def nevermind(ctx: Ctx) -> Outcome:
    return ctx.outcome("")


CONTROLS: dict[str, Handler] = {
    "HassTurnOn": turn_on,
    "HassTurnOff": turn_off,
    "HassLightSet": light_set,
    "HassSetPosition": set_position,
    "HassFanSetSpeed": fan_set_speed,
    "HassClimateSetTemperature": set_temperature,
    "HassSetVolume": set_volume,
    "HassMediaPause": media_pause,
    "HassMediaUnpause": media_unpause,
    "HassMediaNext": media_next,
    "HassMediaPrevious": media_previous,
    "HassNevermind": nevermind,
}
