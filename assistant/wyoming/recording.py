"""One utterance arriving as Wyoming audio chunks, at the client's format, -> 16 kHz mono.

A client says its format in `audio-start` and in every `audio-chunk` (`rate` Hz, `width` bytes
per sample, `channels`): integer PCM, little-endian, interleaved; width 1 is unsigned (as in
WAV), wider samples are signed. Chunks are kept as float32 mono at the client's rate and the
whole utterance is resampled once at the end with the pipeline's sinc resampler
(assistant/voice/audio.py), better than converting chunk by chunk.

Refused with the gateway's audio errors (the handler answers an `error` event):
- a width other than 1-4 bytes, 0 or more than `MAX_CHANNELS` channels, a rate outside
  `MIN_RATE`-`MAX_RATE`, a chunk that is not a whole number of frames, or a rate that changes
  within one utterance: `UnsupportedAudio`;
- more than `max_s` seconds or `max_bytes` bytes in all: `TooLarge`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from assistant.errors import TooLarge, UnsupportedAudio
from assistant.voice.audio import SAMPLE_RATE, resample

MIN_RATE, MAX_RATE = 4000, 192000
MAX_CHANNELS = 8


class Recording:
    def __init__(self, max_s: float, max_bytes: int) -> None:
        self.max_s, self.max_bytes = max_s, max_bytes
        self.rate: int | None = None
        self._pieces: list[np.ndarray] = []
        self._frames = 0
        self._bytes = 0

    @property
    def duration_s(self) -> float:
        return self._frames / self.rate if self.rate else 0.0

    def start(self, data: dict[str, Any]) -> None:
        """`audio-start`: the format that the chunks will have (checked now)."""
        self.rate, _, _ = audio_format(data)

    def add(self, data: dict[str, Any], audio: bytes) -> None:
        """One `audio-chunk`: its format (`data`) and samples."""
        rate, width, channels = audio_format(data)
        if self.rate is None:
            self.rate = rate
        elif rate != self.rate:
            raise UnsupportedAudio(
                f"the rate changed from {self.rate} Hz to {rate} Hz within one utterance: "
                "send every chunk at one rate"
            )
        frame = width * channels
        if len(audio) % frame:
            raise UnsupportedAudio(
                f"a chunk of {len(audio)} bytes is not a whole number of {frame}-byte frames "
                f"({width}-byte samples, {channels} channels)"
            )
        self._bytes += len(audio)
        self._frames += len(audio) // frame
        if self._bytes > self.max_bytes:
            raise TooLarge(
                f"the audio is over {self.max_bytes / 2**20:.1f} MB (GALAXY_MAX_UPLOAD_MB): "
                "end the utterance sooner"
            )
        if self.duration_s > self.max_s:
            raise TooLarge(
                f"the audio is over {self.max_s:.0f} s (GALAXY_MAX_AUDIO_S): send audio-stop "
                "when the command ends"
            )
        if audio:
            self._pieces.append(to_mono_float(audio, width, channels))

    def samples(self) -> np.ndarray:
        """The utterance so far: float32 in [-1, 1], mono, 16 kHz."""
        if not self._pieces or self.rate is None:
            return np.zeros(0, dtype=np.float32)
        return resample(np.concatenate(self._pieces), self.rate, SAMPLE_RATE)


def audio_format(data: dict[str, Any]) -> tuple[int, int, int]:
    """(rate, width, channels) from an audio event's data, checked."""
    values = [data.get(k) for k in ("rate", "width", "channels")]
    numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    if len(numbers) != 3:
        raise UnsupportedAudio(f"audio events need integer rate, width and channels; got {values}")
    rate, width, channels = numbers
    if width not in (1, 2, 3, 4):
        raise UnsupportedAudio(f"{width}-byte samples are not read here: send 16-bit (width 2)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise UnsupportedAudio(f"{channels} channels: send 1 to {MAX_CHANNELS}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedAudio(f"a rate of {rate} Hz: send {MIN_RATE}-{MAX_RATE} Hz (16000 best)")
    return rate, width, channels


def to_mono_float(audio: bytes, width: int, channels: int) -> np.ndarray:
    """Interleaved little-endian integer PCM -> float32 mono in [-1, 1) (channels averaged)."""
    raw = np.frombuffer(audio, dtype=np.uint8)
    if width == 1:
        samples = (raw.astype(np.float32) - 128.0) / 128.0
    elif width == 3:
        # 24-bit: place the three bytes in the top of an int32, keeping the sign.
        triples = raw.reshape(-1, 3).astype(np.int32)
        value = (triples[:, 0] << 8) | (triples[:, 1] << 16) | (triples[:, 2] << 24)
        samples = value.astype(np.float32) / 2.0**31
    else:
        dtype = "<i2" if width == 2 else "<i4"
        samples = np.frombuffer(audio, dtype=dtype).astype(np.float32) / 2.0 ** (8 * width - 1)
    frames = samples.reshape(-1, channels)  # (n_frames, channels)
    return frames.mean(axis=1, dtype=np.float32) if channels > 1 else frames[:, 0]
