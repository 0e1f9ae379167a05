"""Timer intents: HassStartTimer, HassCancelTimer, HassTimerStatus, HassCancelAllTimers.

A timer's `name` slot is free text ("pasta"); it matches without case and with or without a
trailing "timer". With no name, cancel means the most recently started running timer and status
reports every running timer.
"""

from __future__ import annotations

from assistant.errors import InvalidAction, UnknownDevice
from assistant.home import speech
from assistant.home.events import Outcome
from assistant.home.intents import Ctx, Handler
from assistant.home.state import Timer


def _key(name: str | None) -> str:
    text = (name or "").strip().lower()
    return text.removesuffix(" timer").strip() if text != "timer" else ""


def phrase(timer: Timer) -> str:
    """ "the pasta timer", or for an unnamed one "the timer for 5 minutes"."""
    if timer.name and _key(timer.name):
        return f"the {_key(timer.name)} timer"
    return f"the timer for {speech.duration(timer.duration_s)}"


def _name(ctx: Ctx) -> str | None:
    name = ctx.slots.get("name")
    if name is None or name == "":
        return None
    if not isinstance(name, str):
        raise InvalidAction(f"a timer's name is text, not {name!r}")
    return name


def _named(ctx: Ctx, name: str | None) -> list[Timer]:
    """Running timers with this name (all running timers for no name), latest started first."""
    running = sorted(ctx.service.timers(), key=lambda t: t.started, reverse=True)
    if name is None:
        return running
    matching = [t for t in running if _key(t.name) == _key(name)]
    if not matching:
        raise UnknownDevice(f"There's no {_key(name) or 'such'} timer running.")
    return matching


async def start_timer(ctx: Ctx) -> Outcome:
    parts = [ctx.number(k, whole=False) for k in ("hours", "minutes", "seconds")]
    if all(p is None for p in parts):
        raise InvalidAction("Say how long the timer should run, for example 5 minutes.")
    hours, minutes, seconds = (p or 0 for p in parts)
    total = hours * 3600 + minutes * 60 + seconds
    name = _name(ctx)
    timer = ctx.service.start_timer(total, name, ctx.request_id, ctx.source)
    label = f"{speech.capital(_key(name))} timer" if name and _key(name) else "Timer"
    return ctx.outcome(
        f"{label} set for {speech.duration(timer.duration_s)}.",
        timers=(timer,),
        data={"timer_id": timer.id},
    )


async def cancel_timer(ctx: Ctx) -> Outcome:
    timers = _named(ctx, _name(ctx))
    if not timers:
        raise UnknownDevice("There's no timer running.")
    cancelled = ctx.service.cancel_timer(timers[0].id, ctx.request_id, ctx.source)
    return ctx.outcome(f"Cancelled {phrase(cancelled)}.", timers=(cancelled,))


async def timer_status(ctx: Ctx) -> Outcome:
    timers = sorted(_named(ctx, _name(ctx)), key=lambda t: t.ends)
    now = ctx.service.clock()
    if not timers:
        return ctx.outcome("There are no timers running.")
    said = [f"{phrase(t)} has {speech.left(t.remaining_s(now))} left" for t in timers]
    if len(said) == 1:
        text = speech.capital(said[0]) + "."
    else:
        text = f"You have {len(said)} timers: {speech.names(said)}."
    data = {"remaining_s": {str(t.id): round(t.remaining_s(now), 1) for t in timers}}
    return ctx.outcome(text, timers=tuple(timers), data=data)


async def cancel_all_timers(ctx: Ctx) -> Outcome:
    running = ctx.service.timers()
    if not running:
        return ctx.outcome("There are no timers running.")
    cancelled = tuple(ctx.service.cancel_timer(t.id, ctx.request_id, ctx.source) for t in running)
    if len(cancelled) == 1:
        return ctx.outcome(f"Cancelled {phrase(cancelled[0])}.", timers=cancelled)
    return ctx.outcome(f"Cancelled {len(cancelled)} timers.", timers=cancelled)


TIMER_INTENTS: dict[str, Handler] = {
    "HassStartTimer": start_timer,
    "HassCancelTimer": cancel_timer,
    "HassTimerStatus": timer_status,
    "HassCancelAllTimers": cancel_all_timers,
}
