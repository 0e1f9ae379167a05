"""Wake word: a gate that drops a satellite's continuous audio until the wake word is spoken.

`WakeWordGate.process(chunk)` takes 16 kHz s16le mono PCM in chunks of any size and returns
`Gated(detected, audio)`: while armed, `audio` is b"" (nothing before the wake word goes on to
speech detection or transcription); on the chunk where the wake word is found, `detected` is
True and `audio` starts at the end of the wake word; after that every chunk passes unchanged
until `rearm()` (call it when the command has ended).

Where the command starts: openWakeWord fires 40-130 ms (hey_jarvis) to 300-460 ms (okay_nabu)
after the wake word ends (measured on piper's voice), so by then the first word of a command
said without a pause may already have gone by. The gate keeps the last `lookback_s` of audio
and starts the command at its quietest 20 ms in that stretch: the pause after the wake word
when there is one, else the deepest dip between words. Measured (piper's voice, 4 commands,
after other speech): with piper's own ~0.2 s between phrases or a 0.3 s pause, 4/4 commands
kept whole for both words; with the phrases butted together (silence trimmed, no gap at all)
hey_jarvis 4/4 but okay_nabu 1/4: its late firing leaves the dip inside the command, and the
first word is lost. A longer lookback is worse (0.7 s: hey_jarvis 1/4 without a gap; 0.9 s:
it keeps the wake word's tail).

Engine: pyopen-wakeword (openWakeWord's TFLite models through the TFLite C library it ships:
melspectrogram -> embedding -> one small classifier per wake word, one score per 80 ms).
Packaged wake words: okay_nabu, hey_jarvis, hey_mycroft, alexa, hey_rhasspy; or a path to an
openWakeWord .tflite file. pymicro-wakeword is not installed here.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import NamedTuple

import numpy as np
from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

from edge_worker.errors import ModelNotAvailable

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
STEP = 1280  # samples per openWakeWord step (80 ms)
STEP_BYTES = 2 * STEP
_FRAME = 320  # 20 ms: the resolution of the command's start
PACKAGED = tuple(model.value for model in Model)


class Gated(NamedTuple):
    """What the gate lets through for one chunk (16 kHz s16le PCM)."""

    detected: bool
    audio: bytes


def load_wake_word(name: str) -> OpenWakeWord:
    """A packaged wake word by name ("okay_nabu", "Okay Nabu", "hey-jarvis") or a .tflite path."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    if key in PACKAGED:
        return OpenWakeWord.from_builtin(Model(key))
    path = Path(name).expanduser()
    if path.suffix == ".tflite" and path.is_file():
        return OpenWakeWord.from_model(path)
    raise ModelNotAvailable(
        f"unknown wake word {name!r}: use one of {', '.join(PACKAGED)} "
        "or the path of an openWakeWord .tflite model (GALAXY_WAKE_WORD)"
    )


class WakeWordGate:
    """One per stream (it holds the stream's audio state). See the module docstring."""

    def __init__(self, name: str, *, threshold: float = 0.5, lookback_s: float = 0.5) -> None:
        self.name = name
        self.threshold = threshold
        self._model = load_wake_word(name)
        self._features = OpenWakeWordFeatures.from_builtin()
        # The feature extractor starts with 8 s of silence to fill its windows; pay for it
        # here rather than on the stream's first chunk.
        for _ in self._features.process_streaming(bytes(STEP_BYTES)):
            pass
        self._lookback = deque[bytes](maxlen=max(1, round(lookback_s * SAMPLE_RATE / STEP)) + 1)
        self._pending = b""
        self.armed = True
        self.score = 0.0
        """The highest wake-word probability seen since the gate was (re)armed."""

    def rearm(self) -> None:
        """Listen for the wake word again (after the command ended)."""
        self._model.reset()  # forget the last detection so it does not fire again at once
        self._lookback.clear()
        self._pending = b""
        self.armed = True
        self.score = 0.0

    def process(self, chunk: bytes) -> Gated:
        if not self.armed:
            return Gated(False, chunk)
        data = self._pending + chunk
        whole = len(data) - len(data) % STEP_BYTES
        self._pending = data[whole:]
        for offset in range(0, whole, STEP_BYTES):
            step = data[offset : offset + STEP_BYTES]
            self._lookback.append(step)
            if self._detect(step):
                self.armed = False
                log.info("wake word %s detected (p=%.2f)", self.name, self.score)
                after = data[offset + STEP_BYTES :]
                self._pending = b""
                return Gated(True, self._command_start() + after)
        return Gated(False, b"")

    def _detect(self, step: bytes) -> bool:
        for features in self._features.process_streaming(step):
            for prob in self._model.process_streaming(features):
                self.score = max(self.score, prob)
                if prob >= self.threshold:
                    return True
        return False

    def _command_start(self) -> bytes:
        """The lookback from its quietest 20 ms frame on (see the module docstring)."""
        recent = np.frombuffer(b"".join(self._lookback), dtype="<i2").astype(np.float32)
        frames = recent[: recent.size - recent.size % _FRAME].reshape(-1, _FRAME)  # (n, 20 ms)
        energy = (frames**2).mean(axis=1)
        start = int(np.argmin(energy)) * _FRAME
        return recent[start:].astype("<i2").tobytes()
