"""Spoken and written numbers in free text: "thirty percent" -> 30, "twenty one degrees" -> 21,
"a hundred" -> 100, "five and a half" -> 5.5, "21.5°" -> 21.5.

Inside Home Assistant's templates hassil already reads number words: a range list spells each of
its numbers with unicode-rbnf ("twenty-one", "one hundred one") and matches those words, so the
template path needs only `normalize_spoken_numbers` for the two English forms rbnf does not
spell ("a hundred", "one hundred and five"). The classifier's slot filler reads free text, which
hassil does not parse: `find_numbers` reads it, with a table made from the same rbnf spellings
(0-999), plus decimals ("point five"), "and a half" and the forms above. "half" on its own is
not a number here: it means 50% of a brightness but 30 minutes of an hour, so callers decide.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from hassil.numbers import get_rbnf_engine

_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[a-z]+(?:'[a-z]+)?|%|°")
_DIGIT_WORDS = {
    "zero": 0,
    "oh": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
_UNITS = {
    **dict.fromkeys(("hour", "hr", "hrs"), 3600),
    **dict.fromkeys(("minute", "min", "mins"), 60),
    **dict.fromkeys(("second", "sec", "secs"), 1),
}
_MAX_PHRASE = 5  # "nine hundred and ninety nine"
_A_HUNDRED = re.compile(r"\ba hundred\b", re.IGNORECASE)
_HUNDRED_AND = re.compile(r"\bhundred and (?=[a-z])", re.IGNORECASE)


@dataclass(frozen=True)
class NumberSpan:
    """A number found in a token list: tokens[start:end] say `value`."""

    start: int
    end: int
    value: int | float


def tokenize(text: str) -> list[str]:
    """Lower-case words, digits (with a decimal point or comma) and the signs % and °; other
    punctuation is dropped and hyphens split words ("twenty-one" -> twenty, one)."""
    text = text.lower().replace("’", "'").replace("-", " ")
    return _TOKEN.findall(text)


def normalize_spoken_numbers(text: str) -> str:
    """Rewrite the English number forms rbnf does not spell into ones it does, for hassil's
    range lists: "a hundred" -> "one hundred", "one hundred and five" -> "one hundred five"."""
    return _HUNDRED_AND.sub("hundred ", _A_HUNDRED.sub("one hundred", text))


@functools.cache
def _word_numbers() -> dict[tuple[str, ...], int]:
    """Token tuples -> value for 0-999, as rbnf spells them, with "and" after "hundred" and
    "a hundred" added."""
    engine = get_rbnf_engine("en")
    table: dict[tuple[str, ...], int] = {}
    for value in range(1000):
        for spelled in set(engine.format_number(value).text_by_ruleset.values()):
            words = tuple(tokenize(spelled))
            table[words] = value
            if "hundred" in words and words[-1] != "hundred":
                i = words.index("hundred") + 1
                table[(*words[:i], "and", *words[i:])] = value
            if words[:2] == ("one", "hundred"):
                table[("a", *words[1:])] = value
    return table


def _as_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _integer_at(tokens: list[str], i: int) -> tuple[int, float] | None:
    """The longest integer starting at tokens[i]: (end index, value)."""
    token = tokens[i]
    if token[0].isdigit():
        return i + 1, float(token.replace(",", "."))
    table = _word_numbers()
    for end in range(min(len(tokens), i + _MAX_PHRASE), i, -1):
        value = table.get(tuple(tokens[i:end]))
        if value is not None:
            return end, float(value)
    return None


def find_numbers(tokens: list[str]) -> list[NumberSpan]:
    """Every number in `tokens` (from `tokenize`), left to right, longest reading first:
    digits, number words, "<n> point <digit words>", "<n> and a half"."""
    spans: list[NumberSpan] = []
    i = 0
    while i < len(tokens):
        found = _integer_at(tokens, i)
        if found is None:
            i += 1
            continue
        end, value = found
        if tokens[end : end + 1] == ["point"]:
            digits = []
            j = end + 1
            while j < len(tokens) and (tokens[j] in _DIGIT_WORDS or tokens[j].isdigit()):
                digits.append(str(_DIGIT_WORDS.get(tokens[j], tokens[j])))
                j += 1
            if digits:
                value = float(f"{int(value)}.{''.join(digits)}")
                end = j
        if tokens[end : end + 3] == ["and", "a", "half"]:
            value += 0.5
            end += 3
        spans.append(NumberSpan(i, end, _as_number(value)))
        i = end
    return spans


def parse_number(text: str) -> int | float | None:
    """The number `text` says when it says nothing else ("twenty one" -> 21), else None."""
    tokens = tokenize(text)
    spans = find_numbers(tokens)
    if len(spans) == 1 and spans[0].start == 0 and spans[0].end == len(tokens):
        return spans[0].value
    return None


def duration_seconds(words: Sequence[str], numbers: list[NumberSpan]) -> float:
    """Seconds said in `words` (singular tokens: "minute", not "minutes"): "<n> <unit>",
    "an hour", "half an hour", "<unit> and a half"; `numbers`: `find_numbers` of the text."""
    total = 0.0
    ending = {span.end: span.value for span in numbers}
    for i, word in enumerate(words):
        unit = _UNITS.get(word)
        if unit is None:
            continue
        if i in ending:
            total += ending[i] * unit
        elif i >= 2 and words[i - 2] == "half" and words[i - 1] in ("a", "an"):
            total += unit / 2
        elif i >= 1 and words[i - 1] in ("a", "an"):
            total += unit
        if tuple(words[i + 1 : i + 4]) == ("and", "a", "half"):
            total += unit / 2
    return total
