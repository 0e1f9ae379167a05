"""Reading a transcript as a home command: Whisper's best reading, unless the home's sentence
templates reject it and accept one of the beam's close alternatives. Transcripts are written
here (the decoding itself is tested in test_stt.py, the whole turn in test_assist.py)."""

from __future__ import annotations

import pytest

from assistant.voice.intent import IntentRecognizer
from assistant.voice.transcript import Reading, Transcript
from tests.voice.test_intent_templates import make_home


def no_embeddings(texts: list[str]) -> None:
    raise AssertionError(f"reading uses the templates only, not the classifier: {texts}")


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory: pytest.TempPathFactory) -> IntentRecognizer:
    return IntentRecognizer(make_home(), no_embeddings, tmp_path_factory.mktemp("intents"), 0.5)


def heard(text: str, *alternatives: str) -> Transcript:
    readings = tuple(Reading(a, -0.3 - 0.05 * i) for i, a in enumerate(alternatives, 1))
    return Transcript(text, 2.0, 120.0, avg_logprob=-0.3, alternatives=readings)


def test_the_first_alternative_that_is_a_command_is_read_when_the_best_is_not(
    recognizer: IntentRecognizer,
) -> None:
    best = "Front on the kitchen light."
    transcript = heard(best, "Pern on the kitchen light.", "Turn on the kitchen light.")

    read = recognizer.reading(transcript)

    assert read.text == "Turn on the kitchen light." and read.first_guess == best
    assert recognizer.recognize(read.text) is not None


def test_a_best_reading_that_is_a_command_is_kept(recognizer: IntentRecognizer) -> None:
    transcript = heard("Turn off the kitchen light.", "Turn on the kitchen light.")

    assert recognizer.reading(transcript) is transcript


def test_conversation_stays_as_heard_when_no_alternative_is_a_command(
    recognizer: IntentRecognizer,
) -> None:
    transcript = heard("Tell me a joke.", "Tell me a joker.", "Sell me a joke.")

    assert recognizer.reading(transcript) is transcript


def test_nothing_heard_stays_nothing(recognizer: IntentRecognizer) -> None:
    transcript = Transcript("", 2.0, 5.0, reason="no speech (VAD)")

    assert recognizer.reading(transcript) is transcript
