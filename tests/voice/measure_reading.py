"""How often a spoken command reaches its intent (not a test): Whisper's best reading against
the reading `IntentRecognizer.reading` picks from the beam's alternatives, on the sample home
with its vocabulary prompt, as the gateway runs them. Conversation is measured too: a clip that
is not a command must not become one.

    HF_HUB_OFFLINE=1 .venv/bin/python -m tests.voice.measure_reading

Speech comes from piper (three speeds), clean, with white noise at 10 dB SNR, and through the
dashboard's path (resampled to 48 kHz, then averaged back to 16 kHz at each of 3 phases, as
recorder.js does). Prints one JSON object; runs about 3 minutes on 2 cores.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.home.actions import HomeService
from assistant.home.loader import sample_home_path
from assistant.voice.audio import resample
from assistant.voice.intent import IntentRecognizer
from assistant.voice.pipeline import vocabulary
from assistant.voice.stt import SpeechToText
from assistant.voice.tts import TextToSpeech

COMMANDS = [
    "turn on the kitchen lights",
    "turn off the bedroom fan",
    "lock the front door",
    "open the garage door",
    "set the living room light to 50 percent",
    "turn off the counter lights",
    "turn on the coffee machine",
    "close the living room blinds",
    "turn on the desk lamp",
    "what's the temperature in the kitchen",
    "turn off the sprinklers",
    "set a timer for 5 minutes",
    "turn on the floor lamp",
    "dim the bedroom light",
    "is the front door locked",
    "turn off the space heater",
    "turn on the hall light",
    "open the bedroom curtains",
    "turn off all the lights",
    "turn on the garden lights",
]
CONVERSATION = [
    "tell me a joke",
    "what is the capital of france",
    "how do I make pancakes",
    "what's a good name for a cat",
    "who wrote hamlet",
    "can you recommend a movie",
    "how far away is the moon",
    "what should I cook tonight",
    "the front door is red",
    "I love the kitchen",
]


def through_the_browser(clip: np.ndarray, phase: int) -> np.ndarray:
    """recorder.js's path: the microphone at 48 kHz, each 3 samples averaged to one."""
    high = resample(clip, 16000, 48000)[phase:]
    n = high.size // 3
    return high[: n * 3].reshape(n, 3).mean(axis=1)


def main() -> dict[str, object]:
    home = HomeService.open(Settings(home_file=sample_home_path()), Path(tempfile.mkdtemp()))

    def no_embeddings(texts: list[str]) -> None:
        raise AssertionError("only the templates are measured")

    recognizer = IntentRecognizer(home.home, no_embeddings, Path(tempfile.mkdtemp()), 0.5)
    stt = SpeechToText()
    stt.set_vocabulary(vocabulary(home))
    rng = np.random.default_rng(1)
    counts: Counter[str] = Counter()
    for scale in (0.85, 1.0, 1.2):
        voice = TextToSpeech(length_scale=scale)
        for text in COMMANDS + CONVERSATION:
            pcm = b"".join(s.pcm for s in voice.stream(text))
            speech = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
            speech = resample(speech, voice.sample_rate)
            clean = np.pad(speech, 4800)
            noise = rng.normal(0, np.sqrt(np.mean(clean**2) / 10), clean.size)
            clips = [clean, (clean + noise).astype(np.float32)]
            clips += [through_the_browser(clean, phase) for phase in range(3)]
            wanted = recognizer.templates.recognize(text)
            for clip in clips:
                heard = stt.transcribe(clip)
                first = recognizer.templates.recognize(heard.text)
                read = recognizer.templates.recognize(recognizer.reading(heard).text)
                if text in COMMANDS:
                    counts["commands"] += 1
                    counts["understood, best reading"] += first == wanted
                    counts["understood, with alternatives"] += read == wanted
                else:
                    counts["conversation"] += 1
                    counts["became a command, best reading"] += first is not None
                    counts["became a command, with alternatives"] += read is not None
    return dict(counts)


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
