"""Shared by the speech tests: the real models, loaded once, and speech made by piper."""

from __future__ import annotations

import functools
import re

import numpy as np

from assistant.voice.audio import SAMPLE_RATE, float_to_pcm16, resample
from assistant.voice.stt import SpeechToText
from assistant.voice.tts import TextToSpeech

COMMAND = "please turn on the kitchen lights"
"""A command tiny.en transcribes exactly from piper's voice in every format tested."""


@functools.cache
def tts() -> TextToSpeech:
    # No random variation: the same text always gives the same audio, so a test that passed
    # once passes every time (piper's default noise makes each rendering differ).
    return TextToSpeech(noise_scale=0.0, noise_w_scale=0.0)


@functools.cache
def stt() -> SpeechToText:
    return SpeechToText()


@functools.cache
def _spoken(text: str) -> np.ndarray:
    voice = tts()
    pcm = b"".join(spoken.pcm for spoken in voice.stream(text))
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def say(text: str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """`text` spoken by piper, float32 mono at `rate` Hz."""
    return resample(_spoken(text), tts().sample_rate, rate)


def silence(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def padded(
    text: str, before_s: float = 0.3, after_s: float = 0.3, rate: int = SAMPLE_RATE
) -> np.ndarray:
    return np.concatenate([silence(before_s, rate), say(text, rate), silence(after_s, rate)])


def pcm(samples: np.ndarray) -> bytes:
    return float_to_pcm16(samples)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: how transcripts are compared."""
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()
