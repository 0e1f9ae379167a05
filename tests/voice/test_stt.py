"""Speech-to-text: spoken commands come back as their words; silence, noise and music come back
as nothing, never as invented words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.voice import transcript as transcript_module
from assistant.voice.stt import SpeechToText
from edge_worker.errors import ModelNotAvailable
from tests.voice.speech import COMMAND, padded, silence, stt, words

N = 3 * 16000
T = np.arange(N) / 16000
RNG = np.random.default_rng(0)
SOUNDS = {
    "digital silence": np.zeros(N),
    "low white noise": RNG.normal(0, 0.003, N),
    "loud white noise": RNG.normal(0, 0.3, N),
    "clipped noise": np.clip(RNG.normal(0, 1.0, N), -1, 1),
    "a 440 Hz tone": 0.3 * np.sin(2 * np.pi * 440 * T),
    "a chord": 0.1 * sum(np.sin(2 * np.pi * f * T) for f in (261.6, 329.6, 392.0)),
    "a melody": 0.3
    * np.sin(2 * np.pi * np.repeat([262, 294, 330, 349, 392, 440, 494, 523], N // 8) * T),
}
NOT_SPEECH = {name: np.asarray(sound, dtype=np.float32) for name, sound in SOUNDS.items()}


def test_a_spoken_command_is_transcribed_to_its_words() -> None:
    transcript = stt().transcribe(padded(COMMAND))

    assert words(transcript.text) == words(COMMAND)
    assert transcript.reason is None


def test_the_transcript_reports_the_audio_duration() -> None:
    samples = padded(COMMAND)

    transcript = stt().transcribe(samples)

    assert transcript.duration_s == pytest.approx(samples.size / 16000)


@pytest.mark.parametrize("name", NOT_SPEECH)
def test_sounds_that_are_not_speech_give_an_empty_transcript(name: str) -> None:
    transcript = stt().transcribe(NOT_SPEECH[name])

    assert transcript.text == ""
    assert transcript.reason is not None


@pytest.mark.parametrize("name", NOT_SPEECH)
def test_whisper_s_own_guards_give_nothing_even_when_the_vad_check_is_skipped(name: str) -> None:
    # As if the streaming VAD had (wrongly) let the sound through: Whisper still runs, and its
    # no-speech / confidence rules must reject what it would make up.
    transcript = stt().transcribe(NOT_SPEECH[name], speech_checked=True)

    assert transcript.text == ""
    assert transcript.window_s is not None  # Whisper did run


@pytest.mark.parametrize("n", [0, 1, 100])
def test_a_clip_too_short_to_hold_a_word_gives_an_empty_transcript(n: int) -> None:
    transcript = stt().transcribe(np.zeros(n, dtype=np.float32))

    assert transcript.text == "" and transcript.reason is not None


@pytest.fixture(scope="module")
def primed() -> SpeechToText:
    """Whisper primed with a home's words, as the gateway runs it."""
    model = SpeechToText()
    model.set_vocabulary("Kitchen, Garage, Kitchen light, Floor lamp, Sprinklers, dim, timer.")
    return model


@pytest.mark.parametrize("name", NOT_SPEECH)
def test_a_primed_model_still_invents_nothing(primed: SpeechToText, name: str) -> None:
    transcript = primed.transcribe(NOT_SPEECH[name], speech_checked=True)

    assert transcript.text == ""


def test_a_primed_model_hears_the_home_s_words(primed: SpeechToText) -> None:
    transcript = primed.transcribe(padded("turn on the sprinklers"))

    assert words(transcript.text) == ["turn", "on", "the", "sprinklers"]


def test_close_readings_come_back_as_alternatives_each_wording_once(
    primed: SpeechToText, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where ALTERNATIVE_MARGIN falls among the beam's readings depends on the CPU's int8
    # kernels: on one machine the nearest other wording ("Put on the kitchen lights.") scored
    # 0.47 below the best, on others within 0.3. So this test widens the margin and checks
    # that the beam's readings come back, each wording once; test_transcript.py checks the
    # margin itself.
    monkeypatch.setattr(transcript_module, "ALTERNATIVE_MARGIN", 1.0)
    transcript = primed.transcribe(padded("turn on the kitchen lights"))

    assert words(transcript.text) == ["turn", "on", "the", "kitchen", "lights"]
    assert transcript.alternatives, "beam 5 keeps other readings"
    wordings = [words(a.text) for a in transcript.alternatives]
    assert words(transcript.text) not in wordings
    assert len({tuple(w) for w in wordings}) == len(wordings)
    assert transcript.avg_logprob is not None
    for alternative in transcript.alternatives:
        assert 0 <= transcript.avg_logprob - alternative.avg_logprob <= 1.0


def test_nothing_heard_has_no_alternatives(primed: SpeechToText) -> None:
    transcript = primed.transcribe(NOT_SPEECH["a melody"], speech_checked=True)

    assert transcript.text == "" and transcript.alternatives == ()


def test_a_long_pause_does_not_cut_off_what_follows() -> None:
    samples = np.concatenate([padded(COMMAND), silence(8.0), padded("open the garage door")])

    transcript = stt().transcribe(samples)

    assert words(transcript.text) == [*words(COMMAND), *words("open the garage door")]


def test_speech_longer_than_one_window_goes_through_whisper_s_segment_loop() -> None:
    sentences = [
        "please turn on the kitchen lights",
        "the weather will be sunny this afternoon",
        "my sister is visiting us next weekend",
        "remember to buy milk and fresh bread",
        "the children are playing in the garden",
        "dinner will be ready in about an hour",
        "can you recommend a good book to read",
        "the train to the city leaves at noon",
        "we should paint the fence before winter",
        "open the garage door",
    ]
    samples = np.concatenate([padded(s, 0.4, 0.4) for s in sentences * 2])  # about 40 s
    assert samples.size > 30 * 16000

    transcript = stt().transcribe(samples)

    heard = words(transcript.text)
    assert transcript.window_s == 30.0
    assert heard[:6] == words(sentences[0])
    assert heard[-4:] == words(sentences[-1])


def test_the_standard_30_second_window_hears_the_command_too() -> None:
    full_window = SpeechToText(window_s=None)

    transcript = full_window.transcribe(padded(COMMAND))

    assert words(transcript.text) == words(COMMAND)
    assert transcript.window_s == 30.0


def test_a_model_folder_that_does_not_exist_fails_fast_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="GALAXY_STT_MODEL"):
        SpeechToText(str(tmp_path / "whisper-small"))


def test_a_hub_id_is_refused_offline() -> None:
    with pytest.raises(ModelNotAvailable, match="model hubs are not reachable"):
        SpeechToText("openai/whisper-small.en")
