"""Streaming voice-activity detection: one start and one end per utterance, at the right
places, whatever the chunk sizes, and nothing for silence, noise or a click."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.voice.audio import pcm16_to_float
from assistant.voice.vad import SpeechDetector, SpeechEvent
from tests.voice.speech import COMMAND, pcm, say, silence, stt, words


def feed(
    detector: SpeechDetector, data: bytes, sizes: list[int] | None = None
) -> list[SpeechEvent]:
    """Send `data` in chunks of the given sizes (cycled), then close the stream."""
    sizes = sizes or [1024]
    events, at, i = [], 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        events += detector.process(data[at : at + size])
        at, i = at + size, i + 1
    return events + detector.flush()


def test_speech_padded_with_silence_gives_one_start_and_one_end_around_it() -> None:
    speech = say(COMMAND)
    events = feed(SpeechDetector(), pcm(np.concatenate([silence(1.0), speech, silence(1.5)])))

    assert [e.kind for e in events] == ["start", "end"]
    assert events[0].at_s == pytest.approx(1.0, abs=0.15)
    assert events[1].at_s == pytest.approx(1.0 + speech.size / 16000, abs=0.2)


def test_the_utterance_audio_holds_the_whole_command() -> None:
    events = feed(SpeechDetector(), pcm(np.concatenate([silence(1.0), say(COMMAND), silence(1.5)])))

    audio = pcm16_to_float(events[-1].audio)

    assert words(stt().transcribe(audio, speech_checked=True).text) == words(COMMAND)


def test_the_utterance_keeps_the_pre_roll_before_the_first_speech_window() -> None:
    events = feed(
        SpeechDetector(pre_roll_s=0.3),
        pcm(np.concatenate([silence(1.0), say(COMMAND), silence(1.5)])),
    )

    start, end = events
    kept_s = len(end.audio) / 2 / 16000
    assert kept_s >= (end.at_s - start.at_s) + 0.3 - 0.04


@pytest.mark.parametrize("sizes", [[1], [3, 1000, 7], [160], [4096], [31999]])
def test_chunk_sizes_do_not_change_the_events(sizes: list[int]) -> None:
    data = pcm(np.concatenate([silence(0.7), say(COMMAND), silence(1.0)]))
    reference = feed(SpeechDetector(), data)

    events = feed(SpeechDetector(), data, sizes)

    assert events == reference


def test_two_utterances_with_a_pause_between_give_two_ends() -> None:
    data = pcm(
        np.concatenate(
            [silence(0.5), say(COMMAND), silence(1.5), say("open the garage door"), silence(1.0)]
        )
    )

    ends = [e for e in feed(SpeechDetector(), data) if e.kind == "end"]

    assert [
        words(stt().transcribe(pcm16_to_float(e.audio), speech_checked=True).text) for e in ends
    ] == [
        words(COMMAND),
        words("open the garage door"),
    ]


def test_the_silence_that_ends_an_utterance_is_configurable() -> None:
    data = pcm(
        np.concatenate(
            [silence(0.5), say(COMMAND), silence(0.5), say("open the garage door"), silence(1.0)]
        )
    )

    patient = feed(SpeechDetector(end_silence_s=0.8), data)
    hasty = feed(SpeechDetector(end_silence_s=0.3), data)

    assert [e.kind for e in patient].count("end") == 1
    assert [e.kind for e in hasty].count("end") == 2


@pytest.mark.parametrize(
    "sound",
    [
        silence(3.0),
        np.random.default_rng(1).normal(0, 0.3, 48000).astype(np.float32),
        (0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 16000)).astype(np.float32),
    ],
    ids=["silence", "loud noise", "tone"],
)
def test_sounds_that_are_not_speech_give_no_events(sound: np.ndarray) -> None:
    assert feed(SpeechDetector(), pcm(sound)) == []


def test_a_sound_shorter_than_the_minimum_speech_is_not_an_utterance() -> None:
    word = say("yes")
    blip = word[word.size // 2 - 800 : word.size // 2 + 800]  # 0.1 s from the middle of a word
    data = pcm(np.concatenate([silence(1.0), blip, silence(1.5)]))
    assert feed(SpeechDetector(min_speech_s=0.03), data)  # it does sound like speech

    assert feed(SpeechDetector(min_speech_s=0.25), data) == []


def test_closing_the_stream_ends_an_utterance_in_progress() -> None:
    detector = SpeechDetector()
    events = detector.process(pcm(np.concatenate([silence(0.5), say(COMMAND)])))

    closed = detector.flush()

    assert [e.kind for e in events] == ["start"]
    assert [e.kind for e in closed] == ["end"]
    assert detector.in_utterance is False


def test_an_utterance_longer_than_the_maximum_is_ended() -> None:
    long_speech = np.concatenate([say(COMMAND)] * 4)  # about 8 s without a pause

    events = feed(
        SpeechDetector(max_speech_s=3.0), pcm(np.concatenate([silence(0.5), long_speech]))
    )

    first_end = next(e for e in events if e.kind == "end")
    assert len(first_end.audio) / 2 / 16000 == pytest.approx(3.0, abs=0.1)
