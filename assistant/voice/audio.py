"""Audio in and out of the voice pipeline: bytes from a client -> 16 kHz mono float32 samples.

Accepted (the format is found from the bytes first, the content type second):
- WAV (RIFF, RF64, WAVE_FORMAT_EXTENSIBLE), any rate, any channel count, 8/16/24/32-bit integer
  or float samples, and the other encodings libsndfile reads inside WAV (u-law, A-law, ADPCM);
- FLAC; OGG (Vorbis or Opus);
- raw PCM when the content type says so: `audio/L16` or `audio/pcm`, with optional `rate=`
  (default 16000) and `channels=` (default 1) parameters. The samples are signed 16-bit
  LITTLE-endian, as microphones, browsers and Wyoming produce them (RFC 3551 says L16 is
  big-endian; no client of ours sends that).

Refused, always before any model sees the audio:
- larger than `max_bytes`                      -> TooLarge (checked before decoding)
- no bytes, or a file with no samples          -> EmptyAudio
- bytes that are not audio at all              -> UnsupportedAudio ("... not audio: expected ...")
- audio in a format not read here (MP3, AIFF, WebM, MP4/M4A, ...), or a WAV/FLAC/OGG that
  does not decode                               -> UnsupportedAudio
- longer than `max_s`                          -> TooLarge (with the duration; from the header
  when the container has one, so a long file is not decoded first)

Every other rate and channel count is converted: channels are averaged, then libswresample
(PyAV's `AudioResampler`, a windowed-sinc filter, not nearest-sample) converts the rate.
"""

from __future__ import annotations

import io
import logging
import wave
from typing import NamedTuple

import av
import numpy as np
import soundfile as sf

from assistant.errors import EmptyAudio, TooLarge, UnsupportedAudio

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""The rate every model in the pipeline takes (Whisper, Silero VAD, openWakeWord)."""

EXPECTED = "expected WAV, FLAC, OGG or raw 16 kHz PCM (audio/L16;rate=16000)"
RAW_TYPES = ("audio/l16", "audio/pcm", "audio/x-raw", "audio/raw")
# Audio formats recognised (from their first bytes or their content type) but not decoded here.
_FOREIGN_MAGIC = (
    (b"ID3", 0, "MP3"),
    (b"FORM", 0, "AIFF"),
    (b"\x1a\x45\xdf\xa3", 0, "WebM/Matroska"),
    (b"ftyp", 4, "MP4/M4A"),
    (b".snd", 0, "AU"),
    (b"caff", 0, "CAF"),
    (b"#!AMR", 0, "AMR"),
)
_FOREIGN_TYPES = {
    "audio/mpeg": "MP3",
    "audio/mp3": "MP3",
    "audio/aiff": "AIFF",
    "audio/x-aiff": "AIFF",
    "audio/webm": "WebM",
    "audio/mp4": "MP4/M4A",
    "audio/x-m4a": "MP4/M4A",
    "audio/aac": "AAC",
    "audio/amr": "AMR",
    "audio/basic": "AU",
}
# Declared as a format read here, but the bytes did not start like one: "not audio".
_OWN_TYPES = (
    "audio/wav",
    "audio/wave",
    "audio/x-wav",
    "audio/vnd.wave",
    "audio/flac",
    "audio/x-flac",
    "audio/ogg",
    "audio/vorbis",
    "audio/opus",
)
_GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream")


class Decoded(NamedTuple):
    """Samples ready for the models: float32 in [-1, 1], mono, 16 kHz, shape (n,)."""

    samples: np.ndarray
    duration_s: float
    source: str
    """What came in, for logs: "wav 44100 Hz 2 ch PCM_24"."""


def decode(data: bytes, content_type: str | None, max_s: float, max_bytes: int) -> Decoded:
    """Decode one recording (see the module docstring for the formats and the refusals)."""
    if len(data) > max_bytes:
        raise TooLarge(
            f"audio upload is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB "
            "(GALAXY_MAX_UPLOAD_MB): send a shorter or compressed (FLAC/OGG) recording"
        )
    if not data:
        raise EmptyAudio("the audio is empty (0 bytes): send a recording")
    mime, params = _parse_content_type(content_type)
    container = _sniff(data)
    if container is None and mime in RAW_TYPES:
        return _decode_raw(data, params, max_s)
    if container is None:
        foreign = _foreign_format(data) or _FOREIGN_TYPES.get(mime)
        if foreign is not None:
            raise UnsupportedAudio(f"{foreign} audio is not supported: {EXPECTED}")
        if mime.startswith("audio/") and mime not in _OWN_TYPES:
            raise UnsupportedAudio(f"{mime} is not a format read here: {EXPECTED}")
        what = "" if mime in _GENERIC_TYPES else f" (sent as {mime})"
        raise UnsupportedAudio(f"the request body{what} is not audio: {EXPECTED}")
    return _decode_container(data, container, max_s)


def to_wav(samples: np.ndarray, rate: int) -> bytes:
    """Mono 16-bit PCM WAV from float samples in [-1, 1] (clipped) or int16 samples."""
    if samples.dtype != np.int16:
        samples = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    """Signed 16-bit little-endian PCM -> float32 in [-1, 1). A trailing odd byte is ignored."""
    usable = len(pcm) - len(pcm) % 2
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] (clipped) -> signed 16-bit little-endian PCM."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples from `rate` to `target` Hz with libswresample's sinc filter."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if rate == target or samples.size == 0:
        return samples
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    # resample(None) flushes the filter's tail, so the output has the full length.
    pieces = [
        out.to_ndarray()[0] for out in [*resampler.resample(frame), *resampler.resample(None)]
    ]
    return np.concatenate(pieces).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- internals


def _parse_content_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    mime, *rest = content_type.split(";")
    params = {}
    for item in rest:
        key, _, value = item.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return mime.strip().lower(), params


def _sniff(data: bytes) -> str | None:
    """The container named by the first bytes, or None."""
    head = data[:12]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    return None


def _foreign_format(data: bytes) -> str | None:
    for magic, offset, name in _FOREIGN_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name
    # An MPEG audio frame starts with 11 set sync bits (0xFFE) and a valid layer.
    if len(data) > 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06:
        return "MP3"
    return None


def _check_length(duration_s: float, max_s: float) -> None:
    if duration_s > max_s:
        raise TooLarge(
            f"the recording is {duration_s:.1f} s long; the limit is {max_s:g} s "
            "(GALAXY_MAX_AUDIO_S): send a shorter recording"
        )


def _decode_raw(data: bytes, params: dict[str, str], max_s: float) -> Decoded:
    try:
        rate = int(params.get("rate", SAMPLE_RATE))
        channels = int(params.get("channels", 1))
    except ValueError as exc:
        raise UnsupportedAudio(f"raw PCM parameters must be integers: {exc}") from exc
    if not 8000 <= rate <= 192000 or not 1 <= channels <= 8:
        raise UnsupportedAudio(
            f"raw PCM at {rate} Hz with {channels} channels is not read here: "
            "use 8000-192000 Hz and 1-8 channels (best: 16000 Hz, 1 channel)"
        )
    frame_bytes = 2 * channels
    if len(data) % frame_bytes:
        raise UnsupportedAudio(
            f"raw 16-bit PCM with {channels} channel(s) comes in {frame_bytes}-byte frames; "
            f"{len(data)} bytes is not a whole number of them"
        )
    _check_length(len(data) / frame_bytes / rate, max_s)
    samples = pcm16_to_float(data).reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return _finish(samples, rate, f"raw s16le {rate} Hz {channels} ch")


def _decode_container(data: bytes, container: str, max_s: float) -> Decoded:
    name = container.upper()
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UnsupportedAudio(
            f"the {name} file does not decode ({exc}): it may be truncated or use an "
            f"encoding not read here; {EXPECTED}"
        ) from exc
    if info.samplerate <= 0 or info.frames <= 0:
        raise EmptyAudio(f"the {name} file has no samples: send a recording")
    _check_length(info.frames / info.samplerate, max_s)
    try:
        frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UnsupportedAudio(f"the {name} file does not decode: {exc}") from exc
    if frames.shape[0] == 0:
        raise EmptyAudio(f"the {name} file has no samples: send a recording")
    # A header may under-state the length (streamed WAVs): check what was decoded too.
    _check_length(frames.shape[0] / rate, max_s)
    samples = frames.mean(axis=1, dtype=np.float32)
    return _finish(samples, rate, f"{container} {rate} Hz {info.channels} ch {info.subtype}")


def _finish(samples: np.ndarray, rate: int, source: str) -> Decoded:
    duration_s = samples.shape[0] / rate
    if samples.shape[0] == 0:
        raise EmptyAudio("the audio has no samples: send a recording")
    out = resample(samples, rate)
    log.debug("decoded %s, %.2f s", source, duration_s)
    return Decoded(out, duration_s, source)
