"""What the assistant says to anything that is not a home command: SmolLM2 on the cluster.

The system prompt is short (every prompt token is prefill work on the home's devices) and
carries only the part of the home's state the sentence is about: the devices it names, or those
in the areas it names, each described in words (`speech.describe`). A question about the state
itself ("is the garage open") is answered from the state by the templates (HassGetState) before
it ever gets here; this prompt is what keeps the model from guessing when one slips through.
"""

from __future__ import annotations

import re
from typing import Any

from assistant.home.actions import HomeService
from assistant.home.model import Device
from assistant.home.speech import describe

MAX_DEVICES = 8  # state lines in one prompt: beyond this the prompt costs more than it helps

SYSTEM = (
    "You are Galaxy Home, the voice assistant of {home}. Answer in one to three short spoken "
    "sentences, without lists or markdown. If you do not know, say so."
)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _named(text: str, names: tuple[str, ...]) -> bool:
    """Whether every word of one of `names` occurs in `text` ("kitchen light" in "is the
    light on in the kitchen" counts)."""
    said = _words(text)
    return any(_words(n) and _words(n) <= said for n in names)


def relevant_devices(home: HomeService, text: str) -> list[Device]:
    """The devices `text` is about: named ones first, then every device of a named area."""
    named = [d for d in home.home.devices if _named(text, d.names)]
    areas = {a.id for a in home.home.areas if _named(text, a.names)}
    in_areas = [d for d in home.home.devices if d.area in areas and d not in named]
    return (named + in_areas)[:MAX_DEVICES]


def messages(
    home: HomeService, text: str, history: list[dict[str, str]] | None = None
) -> list[dict[str, Any]]:
    """The chat for SmolLM2: the system prompt with the relevant state, earlier turns, `text`."""
    system = SYSTEM.format(home=home.home.name)
    devices = relevant_devices(home, text)
    if devices:
        facts = " ".join(describe(d, home.state_of(d.id)) for d in devices)
        system += f" What you know about the home right now: {facts}"
    return [
        {"role": "system", "content": system},
        *(history or []),
        {"role": "user", "content": text},
    ]
