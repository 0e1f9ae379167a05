"""Wake word: the packaged models trigger on piper's voice; nothing before the wake word is
kept, and the command right after it is kept whole."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.voice.audio import pcm16_to_float
from assistant.voice.listen import Listener, ListenEvent
from assistant.voice.wake import WakeWordGate, load_wake_word
from edge_worker.errors import ModelNotAvailable
from tests.voice.speech import COMMAND, pcm, say, silence, stt, words

WAKE_PHRASES = {"okay_nabu": "okay nabu", "hey_jarvis": "hey jarvis"}


def gate_over(gate: WakeWordGate, data: bytes, chunk: int = 2048) -> tuple[bool, bytes]:
    detected, passed = False, b""
    for at in range(0, len(data), chunk):
        gated = gate.process(data[at : at + chunk])
        detected |= gated.detected
        passed += gated.audio
    return detected, passed


def listen(listener: Listener, samples: np.ndarray, chunk: int = 2048) -> list[ListenEvent]:
    data = pcm(samples)
    events = []
    for at in range(0, len(data), chunk):
        events += listener.process(data[at : at + chunk])
    return events + listener.close()


def heard(event: ListenEvent) -> list[str]:
    return words(stt().transcribe(pcm16_to_float(event.audio), speech_checked=True).text)


@pytest.mark.parametrize("name", WAKE_PHRASES)
def test_the_packaged_wake_word_triggers_on_a_synthesised_voice(name: str) -> None:
    data = pcm(np.concatenate([silence(1.0), say(WAKE_PHRASES[name]), silence(1.0)]))

    detected, _ = gate_over(WakeWordGate(name), data)

    assert detected


@pytest.mark.parametrize("name", WAKE_PHRASES)
def test_other_speech_does_not_trigger_the_wake_word_and_nothing_passes(name: str) -> None:
    data = pcm(
        np.concatenate([silence(0.5), say("the weather is nice today"), say(COMMAND), silence(1.0)])
    )

    detected, passed = gate_over(WakeWordGate(name), data)

    assert not detected
    assert passed == b""


@pytest.mark.parametrize(
    ("name", "pause_s"), [("okay_nabu", 0.3), ("hey_jarvis", 0.3), ("hey_jarvis", 0.0)]
)
def test_speech_before_the_wake_word_is_dropped_and_the_command_after_it_is_kept(
    name: str, pause_s: float
) -> None:
    stream = np.concatenate(
        [
            silence(0.5),
            say("the weather is nice today"),
            silence(0.8),
            say(WAKE_PHRASES[name]),
            silence(pause_s),
            say(COMMAND),
            silence(1.5),
        ]
    )

    events = listen(Listener(name), stream)

    assert [e.kind for e in events] == ["wake", "start", "end"]
    assert heard(events[-1]) == words(COMMAND)


def test_after_a_command_the_listener_waits_for_the_wake_word_again() -> None:
    first = [say("hey jarvis"), silence(0.3), say(COMMAND), silence(1.5)]
    ignored = [say("open the garage door"), silence(1.5)]
    second = [say("hey jarvis"), silence(0.3), say("open the garage door"), silence(1.5)]

    events = listen(
        Listener("hey_jarvis"), np.concatenate([silence(0.5), *first, *ignored, *second])
    )

    assert [e.kind for e in events] == ["wake", "start", "end"] * 2
    assert [heard(e) for e in events if e.kind == "end"] == [
        words(COMMAND),
        words("open the garage door"),
    ]


def test_a_wake_word_with_no_command_times_out_and_rearms() -> None:
    stream = np.concatenate(
        [
            silence(0.5),
            say("hey jarvis"),
            silence(3.0),
            say("hey jarvis"),
            silence(0.3),
            say(COMMAND),
            silence(1.5),
        ]
    )

    events = listen(Listener("hey_jarvis", command_timeout_s=2.0), stream)

    assert [e.kind for e in events] == ["wake", "timeout", "wake", "start", "end"]
    assert heard(events[-1]) == words(COMMAND)


def test_the_wake_event_is_timed_from_the_start_of_the_stream() -> None:
    events = listen(
        Listener("hey_jarvis"), np.concatenate([silence(2.0), say("hey jarvis"), silence(1.0)])
    )

    wake = events[0]
    assert wake.kind == "wake"
    assert 2.0 < wake.at_s < 2.0 + say("hey jarvis").size / 16000 + 0.5


@pytest.mark.parametrize("spelling", ["okay_nabu", "Okay Nabu", "okay-nabu"])
def test_packaged_wake_words_are_found_by_their_spoken_name(spelling: str) -> None:
    assert load_wake_word(spelling).id == "okay_nabu"


def test_an_unknown_wake_word_fails_with_the_list_of_packaged_ones() -> None:
    with pytest.raises(ModelNotAvailable, match="okay_nabu, hey_jarvis"):
        load_wake_word("hey toaster")
