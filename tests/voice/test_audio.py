"""Decoding uploads: every accepted format reaches the models as the same words; every bad
upload is refused with the error that says why."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from assistant.errors import EmptyAudio, TooLarge, UnsupportedAudio
from assistant.voice.audio import SAMPLE_RATE, decode, resample, to_wav
from tests.voice.speech import COMMAND, padded, pcm, stt, words

MB = 1_000_000
MAX_S = 30.0
MAX_BYTES = 16 * MB


def encoded(samples: np.ndarray, rate: int, format: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=format, subtype=subtype)
    return buffer.getvalue()


def heard(data: bytes, content_type: str | None) -> list[str]:
    decoded = decode(data, content_type, MAX_S, MAX_BYTES)
    return words(stt().transcribe(decoded.samples).text)


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24"])
def test_wav_at_any_common_rate_and_width_is_heard_as_the_sentence(rate: int, subtype: str) -> None:
    data = encoded(padded(COMMAND, rate=rate), rate, "WAV", subtype)

    assert heard(data, "audio/wav") == words(COMMAND)


def test_stereo_wav_is_mixed_down_and_heard() -> None:
    mono = padded(COMMAND, rate=44100)
    data = encoded(np.stack([mono, 0.5 * mono], axis=1), 44100, "WAV", "PCM_16")

    assert heard(data, "audio/wav") == words(COMMAND)


@pytest.mark.parametrize(
    ("format", "subtype", "rate"),
    [
        ("FLAC", "PCM_16", 16000),
        ("FLAC", "PCM_24", 48000),
        ("OGG", "VORBIS", 16000),
        ("OGG", "OPUS", 48000),
    ],
)
def test_flac_and_ogg_are_heard(format: str, subtype: str, rate: int) -> None:
    data = encoded(padded(COMMAND, rate=rate), rate, format, subtype)

    assert heard(data, None) == words(COMMAND)


@pytest.mark.parametrize(
    "content_type", ["audio/L16;rate=16000", "audio/pcm", "audio/L16; rate=16000; channels=1"]
)
def test_raw_16_khz_pcm_is_heard(content_type: str) -> None:
    assert heard(pcm(padded(COMMAND)), content_type) == words(COMMAND)


def test_raw_pcm_at_another_rate_and_channel_count_is_converted() -> None:
    mono = padded(COMMAND, rate=8000)
    interleaved = np.stack([mono, mono], axis=1).reshape(-1)  # (frames * 2,) L R L R ...

    assert heard(pcm(interleaved), "audio/L16;rate=8000;channels=2") == words(COMMAND)


def test_decoding_reports_the_duration_and_gives_16_khz() -> None:
    data = encoded(np.zeros(44100 * 2, dtype=np.float32), 44100, "WAV", "PCM_16")

    decoded = decode(data, "audio/wav", MAX_S, MAX_BYTES)

    assert decoded.duration_s == pytest.approx(2.0)
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.shape == (2 * SAMPLE_RATE,)


def test_resampling_filters_what_16_khz_cannot_hold() -> None:
    # A 10 kHz tone is above 16 kHz's 8 kHz limit: a real resampler removes it, while
    # picking the nearest samples would fold it down to an audible 6 kHz.
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 10_000 * t).astype(np.float32)

    out = resample(tone, 44100)

    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) < 0.01


def test_resampling_keeps_a_tone_at_its_pitch() -> None:
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)

    out = resample(tone, 48000)

    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * SAMPLE_RATE / out.size == pytest.approx(1000, abs=2)


def test_to_wav_round_trips_through_decode() -> None:
    samples = (np.sin(np.arange(16000) / 10) * 0.5).astype(np.float32)

    decoded = decode(to_wav(samples, SAMPLE_RATE), "audio/wav", MAX_S, MAX_BYTES)

    np.testing.assert_allclose(decoded.samples, samples, atol=1 / 16000)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"text": "turn on the lights"}', "application/json"),
        (b"hello, this is plain text and no recording", None),
        (b"<html><body>no</body></html>", "audio/wav"),
    ],
)
def test_bytes_that_are_not_audio_are_refused_as_not_audio(
    data: bytes, content_type: str | None
) -> None:
    with pytest.raises(
        UnsupportedAudio, match="not audio: expected WAV, FLAC, OGG or raw 16 kHz PCM"
    ):
        decode(data, content_type, MAX_S, MAX_BYTES)


def test_aiff_is_refused_as_an_unsupported_format() -> None:
    data = encoded(padded(COMMAND), SAMPLE_RATE, "AIFF", "PCM_16")

    with pytest.raises(UnsupportedAudio, match="AIFF audio is not supported"):
        decode(data, "audio/aiff", MAX_S, MAX_BYTES)


def test_mp3_is_refused_as_an_unsupported_format() -> None:
    mp3_start = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(200)

    with pytest.raises(UnsupportedAudio, match="MP3 audio is not supported"):
        decode(mp3_start, "audio/mpeg", MAX_S, MAX_BYTES)


def test_an_unknown_audio_content_type_is_refused_as_unsupported() -> None:
    with pytest.raises(UnsupportedAudio, match="audio/x-unknown is not a format read here"):
        decode(bytes(range(256)) * 4, "audio/x-unknown", MAX_S, MAX_BYTES)


def test_a_wav_header_with_garbage_after_it_is_refused() -> None:
    data = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256))

    with pytest.raises(UnsupportedAudio, match="WAV file does not decode"):
        decode(data, "audio/wav", MAX_S, MAX_BYTES)


def test_raw_pcm_that_is_not_whole_samples_is_refused() -> None:
    with pytest.raises(UnsupportedAudio, match="1001 bytes"):
        decode(bytes(1001), "audio/L16;rate=16000", MAX_S, MAX_BYTES)


def test_a_recording_longer_than_the_limit_is_refused_with_its_duration() -> None:
    data = encoded(np.zeros(31 * 8000, dtype=np.float32), 8000, "WAV", "PCM_16")

    with pytest.raises(TooLarge, match=r"31\.0 s long; the limit is 30 s"):
        decode(data, "audio/wav", MAX_S, MAX_BYTES)


def test_raw_pcm_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(TooLarge, match=r"2\.0 s long; the limit is 1\.5 s"):
        decode(bytes(2 * 2 * SAMPLE_RATE), "audio/pcm", max_s=1.5, max_bytes=16 * MB)


def test_an_upload_over_the_size_limit_is_refused_before_decoding() -> None:
    # Not even audio: the size check must come first, so the answer is "too large".
    with pytest.raises(TooLarge, match=r"2\.0 MB; the limit is 1\.0 MB"):
        decode(b"x" * (2 * MB), "audio/wav", max_s=30.0, max_bytes=MB)


def test_an_empty_upload_is_refused_as_empty() -> None:
    with pytest.raises(EmptyAudio):
        decode(b"", "audio/wav", MAX_S, MAX_BYTES)


def test_a_wav_with_no_samples_is_refused_as_empty() -> None:
    data = to_wav(np.zeros(0, dtype=np.float32), SAMPLE_RATE)

    with pytest.raises(EmptyAudio, match="no samples"):
        decode(data, "audio/wav", MAX_S, MAX_BYTES)
