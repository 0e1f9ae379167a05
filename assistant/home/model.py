"""The home as values: areas, devices and what a spoken command asks of them.

Names follow Home Assistant, so the bridge, Wyoming clients and HA users read them without
translation: a device id is `<domain>.<object>` (`light.kitchen_ceiling`), its domain decides
which attributes its state has (`DOMAINS`), and intents carry HA's names (`HassTurnOn`,
`HassLightSet`, ...) with their slots as one flat object (`{"area": "kitchen", "brightness": 30}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Attributes each domain's state has; a device's initial state in the home file may set them.
DOMAINS: dict[str, tuple[str, ...]] = {
    "light": ("on", "brightness"),  # brightness 0-100
    "switch": ("on",),
    "fan": ("on", "percentage"),  # percentage 0-100
    "lock": ("locked",),
    "cover": ("open", "position"),  # position 0-100 (0: closed)
    "climate": ("target_temperature", "current_temperature", "unit"),
    "media_player": ("playing", "volume", "track"),  # volume 0-100
    "sensor": ("value", "unit"),  # read-only
}

IntentSource = Literal["templates", "classifier", "conversation"]


@dataclass(frozen=True)
class Area:
    id: str
    name: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the household may say for this area."""
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Device:
    id: str  # "<domain>.<object>"
    name: str
    area: str | None  # an Area.id
    aliases: tuple[str, ...] = ()
    state: dict[str, Any] = field(default_factory=dict)  # the state at first start
    # HA's device class where it narrows a request ("garage" door, "blind"); None: unclassed
    device_class: str | None = None

    @property
    def domain(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Home:
    name: str
    areas: tuple[Area, ...]
    devices: tuple[Device, ...]
    # sha256 of the home file's bytes (of the name for a home without a file): whatever is
    # derived from the home's names (the intent classifier's training) is cached by it
    digest: str = ""

    def area(self, area_id: str) -> Area | None:
        return next((a for a in self.areas if a.id == area_id), None)

    def device(self, device_id: str) -> Device | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def in_area(self, area_id: str, domain: str | None = None) -> list[Device]:
        return [
            d for d in self.devices if d.area == area_id and (domain is None or d.domain == domain)
        ]


@dataclass(frozen=True)
class Intent:
    """What a sentence asks for: HA's intent name, flat slots, where it was recognised and
    how sure the recogniser is (1.0 for a template match)."""

    name: str
    slots: dict[str, Any]
    source: IntentSource
    confidence: float = 1.0


@dataclass(frozen=True)
class Change:
    """One attribute of one device changed by a request."""

    device: str
    attribute: str
    old: Any
    new: Any
