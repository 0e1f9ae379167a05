"""Spoken and written numbers in free text (the classifier path; templates use hassil's)."""

from __future__ import annotations

import pytest

from assistant.voice.intent.numbers import (
    duration_seconds,
    find_numbers,
    normalize_spoken_numbers,
    parse_number,
    tokenize,
)
from assistant.voice.intent.words import singular


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("thirty", 30),
        ("twenty one", 21),
        ("twenty-one", 21),
        ("a hundred", 100),
        ("one hundred and five", 105),
        ("nine hundred ninety nine", 999),
        ("five and a half", 5.5),
        ("twenty one point five", 21.5),
        ("21.5", 21.5),
        ("zero", 0),
    ],
)
def test_a_spoken_or_written_number_is_read(text: str, value: float) -> None:
    assert parse_number(text) == value


def test_numbers_are_found_inside_a_sentence_with_their_positions() -> None:
    tokens = tokenize("set the kitchen to thirty percent and the hall to 45%")

    spans = find_numbers(tokens)

    assert [(tokens[s.start : s.end], s.value) for s in spans] == [(["thirty"], 30), (["45"], 45)]


def test_percent_and_degree_signs_are_tokens_of_their_own() -> None:
    assert tokenize("Set it to 30% and 21°!") == ["set", "it", "to", "30", "%", "and", "21", "°"]


def test_half_on_its_own_is_not_a_number() -> None:
    assert find_numbers(tokenize("half")) == []


def test_a_sentence_with_more_than_a_number_is_not_one_number() -> None:
    assert parse_number("thirty percent") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("twenty five minutes", 1500),
        ("an hour and a half", 5400),
        ("half an hour", 1800),
        ("five and a half minutes", 330),
        ("1 hour and 30 minutes", 5400),
        ("ninety seconds", 90),
        ("2 hrs", 7200),
    ],
)
def test_a_spoken_duration_is_read_in_seconds(text: str, seconds: float) -> None:
    tokens = tokenize(text)

    words = [singular(token) for token in tokens]

    assert duration_seconds(words, find_numbers(tokens)) == seconds


def test_forms_rbnf_does_not_spell_are_rewritten_for_the_templates() -> None:
    assert (
        normalize_spoken_numbers("set it to a hundred percent") == "set it to one hundred percent"
    )
    assert normalize_spoken_numbers("one hundred and five") == "one hundred five"
