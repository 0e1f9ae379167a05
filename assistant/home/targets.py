"""Which devices an intent's slots point at (INTENTS.md: "A target is `name` (one device) or
`area` (+ `domain`, `device_class`: every matching device in the area; `domain` alone: every
device of that domain in the home)")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.errors import InvalidAction, UnknownDevice
from assistant.home import speech
from assistant.home.model import DOMAINS, Area, Device, Home

# An area with no domain ("turn off the kitchen") means what has an on/off switch; never the
# covers, locks and players in it (a garage door must not open because its lights were asked).
SWITCHABLE = ("light", "switch", "fan")


@dataclass(frozen=True)
class Target:
    devices: tuple[Device, ...]
    area: Area | None  # the area the request named, if any

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.devices)

    def phrase(self) -> str:
        """ "the kitchen light", "3 lights in the kitchen"."""
        return speech.group(self.devices, self.area)


def _text(slots: dict[str, Any], key: str) -> str | None:
    value = slots.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidAction(f"the slot {key!r} must be text, not {value!r}")
    return value


def resolve(
    home: Home,
    slots: dict[str, Any],
    domains: Sequence[str],
    action: str,
    *,
    area_domains: Sequence[str] | None = None,
    only_one: bool = False,
) -> Target:
    """The devices of `domains` that `slots` name. `action` completes "The X can't ..." when a
    named device is of another domain. `area_domains`: the domains an area without a `domain`
    slot means (default: `domains`). `only_one`: with no target slots, the home's only device
    of `domains` (several: `InvalidAction` asking which)."""
    name, area_id = _text(slots, "name"), _text(slots, "area")
    domain, device_class = _text(slots, "domain"), _text(slots, "device_class")
    if domain is not None and domain not in DOMAINS:
        raise InvalidAction(f"unknown domain {domain!r}; domains: {', '.join(DOMAINS)}")
    if name is not None:
        device = home.device(name)
        if device is None:
            raise UnknownDevice(f"There is no device {name!r} in the home.")
        if device.domain not in domains:
            raise InvalidAction(f"{speech.capital(speech.the(device))} can't {action}.")
        return Target((device,), None)
    area = None
    if area_id is not None:
        area = home.area(area_id)
        if area is None:
            raise UnknownDevice(f"There is no area {area_id!r} in the home.")
    if domain is not None and domain not in domains:
        raise InvalidAction(f"{speech.NOUNS[domain][1].capitalize()} can't {action}.")
    if area is None and domain is None and device_class is None:
        if not only_one:
            raise InvalidAction("Which device or area? Say its name.")
        return _only(home, domains)
    wanted = (domain,) if domain else (area_domains or domains) if area else domains
    devices = tuple(
        d
        for d in home.devices
        if d.domain in wanted
        and (area is None or d.area == area.id)
        and (device_class is None or d.device_class == device_class)
    )
    if not devices:
        what = speech.NOUNS.get(device_class or domain or "", ("", "devices"))[1]
        if not domain and not device_class and len(wanted) == 1:
            what = speech.NOUNS[wanted[0]][1]
        where = f"in {speech.the(area)}" if area else "in the home"
        raise UnknownDevice(f"There are no {what} {where}.")
    return Target(devices, area)


def _only(home: Home, domains: Sequence[str]) -> Target:
    devices = tuple(d for d in home.devices if d.domain in domains)
    if len(devices) == 1:
        return Target(devices, None)
    noun = speech.NOUNS.get(domains[0], ("device", "devices"))
    if not devices:
        raise UnknownDevice(f"There is no {noun[0]} in the home.")
    choices = speech.names([speech.the(d) for d in devices])
    raise InvalidAction(f"Which one? There are {len(devices)} {noun[1]}: {choices}.")
