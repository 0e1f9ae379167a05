"""Text-to-speech: replies split where a reader would pause, each sentence spoken as soon as it
is ready, and the audio says the words."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.voice.audio import decode
from assistant.voice.tts import MAX_CHARS, TextToSpeech, for_speech, sentences
from edge_worker.errors import ModelNotAvailable
from tests.voice.speech import stt, tts, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith says it is 3.5 degrees. Then he left!",
            ["Dr. Smith says it is 3.5 degrees.", "Then he left!"],
        ),
        (
            "The timer ends at 5 p.m. Then we eat. It is 5 p.m. today.",
            ["The timer ends at 5 p.m.", "Then we eat.", "It is 5 p.m. today."],
        ),
        (
            "J. R. R. Tolkien wrote it. Is Mr. Jones, e.g. the neighbour, here?",
            ["J. R. R. Tolkien wrote it.", "Is Mr. Jones, e.g. the neighbour, here?"],
        ),
        (
            "It costs approx. five dollars. Yes... maybe.",
            ["It costs approx. five dollars.", "Yes... maybe."],
        ),
        ('He said "Done." Then left.', ['He said "Done."', "Then left."]),
        ("Lights on:\nkitchen\nhall", ["Lights on:", "kitchen", "hall"]),
        ("No. The door is locked.", ["No.", "The door is locked."]),
        ("No full stop at the end", ["No full stop at the end"]),
        ("", []),
    ],
)
def test_sentences_split_where_a_reader_would(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_a_very_long_sentence_is_cut_at_a_comma() -> None:
    text = ", ".join(["the kitchen light is on"] * 20) + "."

    pieces = sentences(text)

    assert len(pieces) > 1
    assert all(len(piece) <= MAX_CHARS for piece in pieces)
    assert " ".join(pieces) == text


def test_titles_before_names_are_spelled_out_for_the_voice() -> None:
    assert (
        for_speech("Dr. Smith and Mrs. Jones, St. Louis")
        == "Doctor Smith and Missus Jones, St. Louis"
    )


def test_synthesized_speech_says_the_words() -> None:
    wav = tts().synthesize("The kitchen lights are on. The front door is locked.")

    decoded = decode(wav, "audio/wav", max_s=30, max_bytes=16_000_000)

    assert words(stt().transcribe(decoded.samples).text) == words(
        "The kitchen lights are on. The front door is locked."
    )


def test_the_stream_yields_one_piece_of_audio_per_sentence() -> None:
    spoken = list(tts().stream("The lights are on. The door is locked. Good night!"))

    assert [s.sentence for s in spoken] == [
        "The lights are on.",
        "The door is locked.",
        "Good night!",
    ]
    assert all(s.sample_rate == 22050 and len(s.pcm) > 0.3 * 22050 * 2 for s in spoken)


def test_the_first_sentence_is_spoken_before_the_second_is_read() -> None:
    consumed: list[str] = []

    def reply() -> Iterator[str]:
        # A reply arriving token by token, as from a language model.
        for token in [
            "The kitchen ",
            "lights ",
            "are on. ",
            "The front ",
            "door ",
            "is ",
            "locked.",
        ]:
            consumed.append(token)
            yield token

    first = next(tts().stream(reply()))

    assert first.sentence == "The kitchen lights are on."
    assert len(first.pcm) > 0
    # The splitter needs the next character to know the sentence ended, and nothing more.
    assert consumed == ["The kitchen ", "lights ", "are on. ", "The front "]


def test_spoken_audio_is_16_bit_pcm_at_the_voice_rate() -> None:
    spoken = next(tts().stream("Hello there."))

    samples = np.frombuffer(spoken.pcm, dtype="<i2")
    assert spoken.sample_rate == tts().sample_rate == 22050
    assert np.abs(samples).max() > 1000  # real audio, not silence


@pytest.mark.skipif(shutil.which("espeak-ng") is not None, reason="espeak-ng is installed here")
def test_a_missing_voice_without_espeak_ng_fails_naming_both_engines(tmp_path: Path) -> None:
    with pytest.raises(
        ModelNotAvailable, match=r"piper could not load voice .*espeak-ng is not installed"
    ):
        TextToSpeech(str(tmp_path / "missing.onnx"))


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)"
)
def test_a_missing_voice_falls_back_to_espeak_ng_which_speaks(tmp_path: Path) -> None:
    fallback = TextToSpeech(str(tmp_path / "missing.onnx"))

    wav = fallback.synthesize("Open the garage door.")

    assert fallback.engine.name.startswith("espeak-ng")
    decoded = decode(wav, "audio/wav", max_s=30, max_bytes=16_000_000)
    assert words(stt().transcribe(decoded.samples).text) == words("open the garage door")
