"""The words a household uses for its home, for the slot filler (slots.py): the nouns of each
domain, state words, directions and sizes of relative requests, and matching names word by word
(singular and plural alike)."""

from __future__ import annotations

from dataclasses import dataclass

from assistant.voice.intent.numbers import tokenize

DOMAIN_WORDS = {
    **dict.fromkeys(("light", "lamp", "lighting"), "light"),
    **dict.fromkeys(("switch", "plug", "outlet", "socket"), "switch"),
    **dict.fromkeys(("blind", "shade", "curtain", "shutter", "awning"), "cover"),
    **dict.fromkeys(("thermostat", "heating"), "climate"),
    **dict.fromkeys(("speaker", "stereo", "music", "radio", "tv"), "media_player"),
    **{domain: domain for domain in ("fan", "lock", "sensor")},
}
STATE_WORDS = {
    "on": "on",
    "off": "off",
    "open": "open",
    "opened": "open",
    "closed": "closed",
    "shut": "closed",
    "locked": "locked",
    "unlocked": "unlocked",
}
# Generic directions ("turn it up"), read after the quantity's own words ("turn the heat down").
UP = frozenset({"up", "increase", "raise", "boost", "more", "higher"})
DOWN = frozenset({"down", "decrease", "lower", "reduce", "less"})
# per step slot: (words for more, words for less, adjectives that after a complaint word ask
# for more, ... for less)
RELATIVE: dict[str, tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]] = {
    "brightness_step": (
        frozenset({"brighter", "brighten", "lighter"}),
        frozenset({"dimmer", "dim", "darker", "darken"}),
        frozenset({"dark", "dim", "gloomy"}),
        frozenset({"bright", "light"}),
    ),
    "temperature_step": (
        frozenset({"warmer", "hotter", "warm"}),
        frozenset({"cooler", "colder", "cool", "chill"}),
        frozenset({"cold", "cool", "chilly", "freezing"}),
        frozenset({"hot", "warm", "stuffy", "boiling"}),
    ),
    "volume_step": (
        frozenset({"louder", "hear"}),  # "I can't hear it": more
        frozenset({"quieter", "softer"}),
        frozenset({"quiet", "soft", "low"}),
        frozenset({"loud", "noisy"}),
    ),
}
DEFAULT_STEP = {"brightness_step": 20, "temperature_step": 1.0, "volume_step": 10}
# A word before an adjective that makes it a complaint: "too cold", "it's freezing" ask for
# warmer; "make it cold" does not.
COMPLAINT = frozenset({"too", "it's", "i'm", "so", "really", "very", "pretty", "quite", "bit"})
SMALL = frozenset({"bit", "little", "slightly", "touch", "tad", "tiny"})
BIG = frozenset({"lot", "much", "lots", "way", "loads"})
MAX = frozenset({"max", "maximum", "full", "highest", "brightest", "fully"})
MIN = frozenset({"min", "minimum", "lowest", "dimmest"})
# What a device's name becomes in `delexicalize`: the everyday word for its domain.
DOMAIN_NOUN = {
    "light": "light",
    "switch": "switch",
    "fan": "fan",
    "cover": "blinds",
    "lock": "lock",
    "climate": "thermostat",
    "media_player": "speaker",
    "sensor": "sensor",
}


def singular(word: str) -> str:
    """A crude English singular, applied to names and text alike so both sides agree."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def name_words(text: str) -> tuple[str, ...]:
    return tuple(singular(token) for token in tokenize(text))


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    target: str  # a device or area id

    def overlaps(self, other: Found) -> bool:
        return self.start < other.end and other.start < self.end


def is_verb(i: int, words: tuple[str, ...]) -> bool:
    """Whether words[i] is "switch" used as a verb ("switch off the lamp"), not a device."""
    after = words[i + 1] if i + 1 < len(words) else ""
    return words[i] == "switch" and (i == 0 or after in ("on", "off", "it", "the", "all"))


def find_all(words: tuple[str, ...], names: list[tuple[tuple[str, ...], str]]) -> list[Found]:
    """Every occurrence of every name, longest first (then leftmost)."""
    found = []
    for name, target in names:
        n = len(name)
        for i in range(len(words) - n + 1):
            if words[i : i + n] == name:
                found.append(Found(i, i + n, target))
    return sorted(found, key=lambda f: (-(f.end - f.start), f.start))
