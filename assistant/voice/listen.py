"""A streamed microphone, turned into utterances: the optional wake-word gate, then the VAD.

`Listener.process(chunk)` takes 16 kHz s16le mono PCM in chunks of any size and returns events:
- `ListenEvent("wake", at_s)` when the wake word is heard (only with a wake word);
- `ListenEvent("start", at_s)` when speech starts;
- `ListenEvent("end", at_s, audio)` when it ends, with the utterance as 16 kHz s16le PCM, ready
  for `audio.pcm16_to_float` and `SpeechToText.transcribe(..., speech_checked=True)`;
- `ListenEvent("timeout", at_s)` when the wake word was heard but no speech started within
  `command_timeout_s` (answer "I didn't hear anything"); the listener waits for the wake word
  again.
With a wake word, nothing before it reaches the VAD, and after each "end" the listener waits
for the wake word again. `at_s` counts from the stream's first byte. `close()` ends an
utterance in progress when the client stops sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from assistant.voice.vad import SAMPLE_RATE, SpeechDetector, SpeechEvent
from assistant.voice.wake import WakeWordGate


@dataclass(frozen=True)
class ListenEvent:
    kind: Literal["wake", "start", "end", "timeout"]
    at_s: float
    audio: bytes = b""


class Listener:
    """One per stream; `wake_word=None` listens for speech directly."""

    def __init__(
        self,
        wake_word: str | None = None,
        detector: SpeechDetector | None = None,
        *,
        command_timeout_s: float = 5.0,
    ) -> None:
        self._gate = WakeWordGate(wake_word) if wake_word else None
        self._timeout_bytes = int(command_timeout_s * SAMPLE_RATE) * 2
        self._vad = detector or SpeechDetector()
        self._received = 0  # bytes of the stream so far
        self._offset_s = 0.0  # stream time of the VAD's time 0

    def process(self, chunk: bytes) -> list[ListenEvent]:
        self._received += len(chunk)
        events: list[ListenEvent] = []
        if self._gate is not None:
            gated = self._gate.process(chunk)
            if gated.detected:
                # The VAD's clock restarts at the first byte the gate let through.
                self._offset_s = (self._received - len(gated.audio)) / 2 / SAMPLE_RATE
                self._vad.reset()
                events.append(ListenEvent("wake", self._offset_s))
            chunk = gated.audio
        if chunk:
            events.extend(self._from_vad(self._vad.process(chunk)))
        if self._gate is not None and not self._gate.armed and not self._vad.in_utterance:
            waited = self._received - self._offset_s * 2 * SAMPLE_RATE
            if waited >= self._timeout_bytes:
                self._gate.rearm()
                events.append(ListenEvent("timeout", self._received / 2 / SAMPLE_RATE))
        return events

    def close(self) -> list[ListenEvent]:
        """The stream ended: the utterance in progress, if any."""
        return self._from_vad(self._vad.flush())

    def _from_vad(self, found: list[SpeechEvent]) -> list[ListenEvent]:
        events = []
        for event in found:
            events.append(ListenEvent(event.kind, self._offset_s + event.at_s, event.audio))
            if event.kind == "end" and self._gate is not None:
                self._gate.rearm()
        return events
