"""The two pure parts of the Wyoming server: reading events with limits from bytes, and a
client's PCM (any width, channels, rate) to the pipeline's 16 kHz mono float."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from assistant.errors import TooLarge, UnsupportedAudio
from assistant.wyoming.framing import BadEvent, BrokenStream, read_event
from assistant.wyoming.recording import Recording, to_mono_float


def stream(*parts: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1024)
    for part in parts:
        reader.feed_data(part)
    reader.feed_eof()
    return reader


def header(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


async def test_data_and_payload_are_read_after_the_header() -> None:
    extra = json.dumps({"width": 2}).encode()
    reader = stream(
        header(type="audio-chunk", data={"rate": 16000}, data_length=len(extra), payload_length=4),
        extra + b"\x01\x02\x03\x04",
    )

    event = await read_event(reader, max_payload=100)

    assert event is not None
    assert (event.type, event.data, event.payload) == (
        "audio-chunk",
        {"rate": 16000, "width": 2},
        b"\x01\x02\x03\x04",
    )
    assert await read_event(reader, max_payload=100) is None


async def test_a_malformed_header_is_skipped_and_the_next_event_is_read() -> None:
    reader = stream(b"{not json\n", header(data={}), header(type="describe"))

    with pytest.raises(BadEvent, match="not JSON"):
        await read_event(reader, 100)
    with pytest.raises(BadEvent, match='no "type"'):
        await read_event(reader, 100)
    event = await read_event(reader, 100)

    assert event is not None and event.type == "describe"


@pytest.mark.parametrize(
    "bad",
    [
        header(type="audio-chunk", payload_length=101),
        header(type="audio-chunk", payload_length=-1),
        header(type="audio-chunk", payload_length="12"),
        header(type="info", data_length=(1 << 20) + 1),
        b"x" * 2048 + b"\n",  # a header over the reader's line limit
    ],
)
async def test_lengths_past_the_limits_or_not_counts_break_the_stream(bad: bytes) -> None:
    with pytest.raises(BrokenStream):
        await read_event(stream(bad), max_payload=100)


async def test_a_connection_closed_mid_event_is_the_end_not_an_error() -> None:
    reader = stream(header(type="audio-chunk", payload_length=10), b"12345")

    assert await read_event(reader, 100) is None


def sine(rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("width", "dtype", "scale", "offset"),
    [
        (1, "u1", 127, 128),
        (2, "<i2", 32767, 0),
        (4, "<i4", 2**31 - 1, 0),
    ],
)
def test_every_integer_width_reads_as_the_same_float_samples(
    width: int, dtype: str, scale: int, offset: int
) -> None:
    wave = sine(16000)
    pcm = (np.round(wave * scale) + offset).astype(dtype).tobytes()

    samples = to_mono_float(pcm, width, 1)

    np.testing.assert_allclose(samples, wave, atol=2 / scale + 1e-6)


def test_24_bit_samples_keep_their_sign() -> None:
    values = np.array([0, 1, -1, 2**23 - 1, -(2**23)], dtype=np.int32)
    pcm = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)

    samples = to_mono_float(pcm, 3, 1)

    np.testing.assert_allclose(samples, values / 2.0**23)


def test_stereo_is_averaged_and_the_rate_becomes_16_khz() -> None:
    left, right = sine(22050), np.zeros(11025, dtype=np.float32)
    stereo = np.stack([left, right], axis=1).reshape(-1)  # interleaved L R L R ...
    pcm = (stereo * 32767).astype("<i2").tobytes()
    recording = Recording(max_s=5, max_bytes=10**6)

    recording.add({"rate": 22050, "width": 2, "channels": 2}, pcm)
    samples = recording.samples()

    assert abs(len(samples) - 8000) <= 2  # 0.5 s at 16 kHz
    assert 0.2 < np.abs(samples[1000:7000]).max() < 0.3  # half of the 0.5 peak


def test_a_rate_that_changes_within_an_utterance_is_refused() -> None:
    recording = Recording(max_s=5, max_bytes=10**6)
    recording.add({"rate": 16000, "width": 2, "channels": 1}, b"\0\0" * 100)

    with pytest.raises(UnsupportedAudio, match="changed from 16000 Hz to 48000 Hz"):
        recording.add({"rate": 48000, "width": 2, "channels": 1}, b"\0\0" * 100)


@pytest.mark.parametrize(
    ("fmt", "audio", "match"),
    [
        ({"rate": 16000, "width": 2, "channels": 2}, b"\0" * 6, "whole number of 4-byte frames"),
        ({"rate": 16000, "width": 8, "channels": 1}, b"\0" * 8, "8-byte samples"),
        ({"rate": 100, "width": 2, "channels": 1}, b"\0" * 8, "100 Hz"),
        ({"rate": 16000, "width": 2}, b"\0" * 8, "integer rate, width and channels"),
    ],
)
def test_audio_in_a_format_not_read_here_is_refused_with_the_reason(
    fmt: dict[str, int], audio: bytes, match: str
) -> None:
    with pytest.raises(UnsupportedAudio, match=match):
        Recording(max_s=5, max_bytes=10**6).add(fmt, audio)


def test_audio_past_the_byte_limit_is_refused() -> None:
    recording = Recording(max_s=60, max_bytes=1000)

    with pytest.raises(TooLarge, match="MB"):
        recording.add({"rate": 16000, "width": 2, "channels": 1}, b"\0" * 1002)
