"""Measurements of the speech stages (not a test): load times, STT latency and word error rate
per encoder window and beam, TTS time to the first sentence, VAD and wake-word cost per chunk.

    HF_HUB_OFFLINE=1 .venv/bin/python -m tests.voice.measure_voice [--quick]

Speech comes from piper (the joe voice at three speeds), clean and with white noise at 10 dB
SNR. Prints one JSON object. Runs about 2 minutes on 2 cores (--quick: latency only).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from assistant.voice.audio import float_to_pcm16, resample
from assistant.voice.stt import SpeechToText
from assistant.voice.tts import TextToSpeech
from assistant.voice.vad import SpeechDetector
from assistant.voice.wake import WakeWordGate

COMMANDS = [
    "turn on the kitchen lights",
    "turn off the bedroom fan",
    "set the living room lights to 50 percent",
    "what's the temperature in the kitchen",
    "lock the front door",
    "open the garage door",
    "set a timer for 5 minutes",
    "dim the hallway lights",
    "is the back door locked",
    "turn the thermostat up to 22 degrees",
    "pause the music",
    "next song",
    "close the blinds in the office",
    "how long is left on the timer",
    "what time is it",
    "turn everything off in the basement",
    "make the bedroom a bit warmer",
    "cancel all timers",
    "start the fan in the study at high speed",
    "are any lights on upstairs",
]


def words(text: str) -> list[str]:
    text = text.lower().replace("%", " percent").replace("-", " ")
    for spoken, digits in (("twenty two", "22"), ("fifty", "50"), ("five", "5")):
        text = text.replace(spoken, digits)
    return re.sub(r"[^a-z0-9' ]", " ", text).split()


def edits(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def median_ms(run: Callable[[], object], repeat: int = 10) -> float:
    run()  # not counted: caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def timed_ms(build: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    built = build()
    return built, round((time.perf_counter() - started) * 1000)


def main(quick: bool) -> dict[str, object]:
    out: dict[str, object] = {}
    tts, out["tts_load_ms"] = timed_ms(TextToSpeech)
    assert isinstance(tts, TextToSpeech)

    def say(text: str, voice: TextToSpeech = tts) -> np.ndarray:
        pcm = b"".join(s.pcm for s in voice.stream(text))
        return resample(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768, voice.sample_rate)

    configs: dict[str, tuple[float | None, int]] = {
        "window 15 s, beam 1": (15.0, 1),
        "window 15 s, beam 5": (15.0, 5),
    }
    configs |= {"window 30 s, beam 1": (None, 1), "window 30 s, beam 5": (None, 5)}
    command = np.concatenate(
        [np.zeros(4800, np.float32), say("set the living room lights to fifty percent")]
    )
    command = np.concatenate([command, np.zeros(4800, np.float32)])
    out["command_s"] = round(command.size / 16000, 2)
    models = {}
    for name, (window, beam) in configs.items():
        model = SpeechToText(window_s=window, beam_size=beam)
        models[name] = model
        out[f"stt_load_ms ({name})"] = f"{model.load_ms:.0f} load + {model.warm_ms:.0f} warm-up"

        def plain(m: SpeechToText = model) -> object:
            return m.transcribe(command)

        def checked(m: SpeechToText = model) -> object:
            return m.transcribe(command, speech_checked=True)

        out[f"stt_ms median of 10 ({name})"] = median_ms(plain)
        out[f"stt_ms, VAD already run ({name})"] = median_ms(checked)

    reply = "The kitchen lights are on."
    out["tts_first_sentence_ms (1 sentence)"] = median_ms(lambda: next(tts.stream(reply)))
    long_reply = (
        "The living room is at 21 degrees. The front door is locked, and the lights are off."
    )
    out["tts_first_sentence_ms (2 sentences)"] = median_ms(lambda: next(tts.stream(long_reply)))
    out["tts_whole_ms (2 sentences)"] = median_ms(lambda: list(tts.stream(long_reply)))

    stream = float_to_pcm16(
        np.concatenate([np.zeros(16000, np.float32), command, np.zeros(24000, np.float32)])
    )
    detector, out["vad_load_ms"] = timed_ms(SpeechDetector)
    assert isinstance(detector, SpeechDetector)
    windows = len(stream) // 1024

    def run_vad() -> None:
        detector.reset()
        detector.process(stream)

    out["vad_ms per 32 ms window"] = round(median_ms(run_vad, 5) / windows, 2)
    gate, out["wake_load_ms"] = timed_ms(lambda: WakeWordGate("okay_nabu"))
    assert isinstance(gate, WakeWordGate)
    steps = len(stream) // 2560

    def run_wake() -> None:
        gate.rearm()
        gate.process(stream)

    out["wake_ms per 80 ms chunk"] = round(median_ms(run_wake, 5) / steps, 2)
    if quick:
        return out

    rng = np.random.default_rng(1)
    voices = {scale: TextToSpeech(length_scale=scale) for scale in (0.85, 1.2)} | {1.0: tts}
    clips = []
    for text in COMMANDS:
        for voice in voices.values():
            clean = np.concatenate(
                [np.zeros(4800, np.float32), say(text, voice), np.zeros(4800, np.float32)]
            )
            noise = rng.normal(0, np.sqrt(np.mean(clean**2) / 10), clean.size).astype(np.float32)
            clips.append((text, "clean", clean))
            clips.append((text, "10 dB SNR", clean + noise))
    for name, model in models.items():
        for condition in ("clean", "10 dB SNR"):
            errors = total = 0
            for text, kind, clip in clips:
                if kind == condition:
                    errors += edits(words(text), words(model.transcribe(clip).text))
                    total += len(words(text))
            out[f"wer {condition} ({name})"] = round(errors / total, 3)
    return out


if __name__ == "__main__":
    print(json.dumps(main("--quick" in sys.argv), indent=1))
