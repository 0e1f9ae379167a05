"""What Whisper heard (`Transcript`, with the beam's other `Reading`s) and Whisper's rules for
trusting a decoded result, kept apart from the model (stt.py) so the intent side can read a
transcript without loading it."""

from __future__ import annotations

import itertools
import re
import zlib
from dataclasses import dataclass

NO_SPEECH_PROB = 0.6
LOGPROB_FLOOR = -1.0
COMPRESSION_CEILING = 2.4
ALTERNATIVE_MARGIN = 0.3
"""How far below the best reading's average log-probability an alternative may be. On 20 of
the sample home's commands x 3 piper speeds x 5 conditions (clean, 10 dB SNR, the dashboard's
48 kHz path at 3 phases), the commands the templates understood rose from 261 to 271 of 300,
and none of 150 conversational clips became a command (`python -m tests.voice.measure_reading`).
In a first trial, 0.3 caught all but one of what an unbounded margin caught."""


@dataclass(frozen=True)
class Reading:
    """One of the beam's other readings of the same audio."""

    text: str
    avg_logprob: float


@dataclass(frozen=True)
class Transcript:
    """What was said. `text` is "" when nothing was heard; `reason` then says why."""

    text: str
    duration_s: float
    """Length of the audio (s)."""
    ms: float
    """Processing time (ms), speech check included."""
    reason: str | None = None
    """Why the text is empty: "no speech (VAD)", "no speech (whisper)", "unreliable ..."."""
    no_speech_prob: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    window_s: float | None = None
    """Encoder window used (s); None when Whisper did not run."""
    alternatives: tuple[Reading, ...] = ()
    """The beam's other readings, best first (see ALTERNATIVE_MARGIN); empty when `text` is."""
    first_guess: str | None = None
    """Whisper's best reading, when a caller chose one of the alternatives over it."""


def compression_ratio(text: str) -> float:
    """Bytes of `text` over bytes of its zlib compression (Whisper's repetition measure)."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def repeats_a_sentence(text: str) -> bool:
    """Whether one sentence follows itself ("Lights on. Lights on.")."""
    said = [s.strip(" .!?,").lower() for s in re.split(r"(?<=[.!?])\s+", text)]
    return any(a and a == b for a, b in itertools.pairwise(said))


def one_word_repeated(text: str) -> bool:
    """Whether the text is one word, three times or more, and nothing else."""
    words = re.findall(r"\w+", text.lower())
    return len(words) >= 3 and len(set(words)) == 1


def judge(text: str, no_speech_prob: float, avg_logprob: float, window_s: float) -> Transcript:
    """Apply Whisper's rules to one decoded result (duration and time are filled in later)."""
    ratio = compression_ratio(text)
    reason = None
    if no_speech_prob > NO_SPEECH_PROB and avg_logprob < LOGPROB_FLOOR:
        reason = "no speech (whisper)"
    elif ratio > COMPRESSION_CEILING:
        reason = f"unreliable: repetitive output (compression ratio {ratio:.2f})"
    elif avg_logprob < LOGPROB_FLOOR:
        reason = f"unreliable: low confidence (avg log-probability {avg_logprob:.2f})"
    elif one_word_repeated(text):
        # A tone came out as "beep beep beep beep beep beep" (no-speech 0.65, log-prob -0.62,
        # compression 1.8: too short for the ratio rule). No command is one word said over.
        reason = "unreliable: one word repeated"
    elif not any(ch.isalnum() for ch in text):
        reason = "no speech (whisper)"
    return Transcript(
        "" if reason else text,
        0.0,
        0.0,
        reason=reason,
        no_speech_prob=no_speech_prob,
        avg_logprob=avg_logprob,
        compression_ratio=ratio,
        window_s=window_s,
    )


def close_alternatives(best: Reading, others: list[Reading]) -> tuple[Reading, ...]:
    """The other readings within ALTERNATIVE_MARGIN of the best, one per distinct wording
    (the beam often differs only in punctuation or case), none that Whisper's rules reject."""
    seen = {_wording(best.text)}
    kept = []
    for reading in others:
        wording = _wording(reading.text)
        if best.avg_logprob - reading.avg_logprob > ALTERNATIVE_MARGIN or wording in seen:
            continue
        seen.add(wording)
        rejected = judge(reading.text, 0.0, reading.avg_logprob, 0.0).reason is not None
        if not rejected and not repeats_a_sentence(reading.text):
            kept.append(reading)
    return tuple(kept)


def _wording(text: str) -> str:
    return " ".join(re.sub(r"[^\w' ]", " ", text.lower()).split())
