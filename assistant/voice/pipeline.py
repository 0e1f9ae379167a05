"""The voice turn: audio or text in, the home acts, a reply spoken (DESIGN.md section 4b).

    turn = await assistant.text_turn("turn on the kitchen light")
    turn = await assistant.audio_turn(decoded_samples)        # 16 kHz mono float32

1. speech-to-text (`stt.py`, on the gateway, where the audio arrived);
2. intent: HA's templates, then the MiniLM classifier whose embeddings run on the cluster
   (`intent/`); a home command goes to the home (`assistant/home`), which says what it did;
3. anything else is conversation: SmolLM2 on the cluster under the planner's plan, with the
   relevant part of the home's state in its prompt (`conversation.py`);
4. text-to-speech (`tts.py`), sentence by sentence.

Every stage reports its time. Models load once at start (`start()`); the classifier trains at
start (its embeddings through the cluster: on the gateway's own device when no worker is online
yet), or loads from its cache, keyed by the home file's hash.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.cluster.inference import SamplingParams, chat, embed
from assistant.cluster.manager import ClusterManager
from assistant.config import Settings
from assistant.home.actions import HomeService
from assistant.home.model import Intent
from assistant.voice import conversation
from assistant.voice.intent import IntentRecognizer
from assistant.voice.replies import ReplyAudio
from assistant.voice.stt import SpeechToText
from assistant.voice.transcript import Transcript
from assistant.voice.tts import Spoken, TextToSpeech

log = logging.getLogger(__name__)

NOTHING_HEARD = "Sorry, I didn't hear anything."
# The cluster work done for the turn in progress (embeddings, generation): plans and times.
_cluster_work: contextvars.ContextVar[list[dict[str, Any]]] = contextvars.ContextVar("work")


def vocabulary(home: HomeService) -> str:
    """The words of this home that a general speech model would not expect: its rooms and
    devices, with the verbs a household uses for them."""
    names = [n for a in home.home.areas for n in a.names]
    names += [n for d in home.home.devices for n in d.names]
    return ", ".join(dict.fromkeys([*names, "dim", "brighten", "thermostat", "timer"])) + "."


def new_request_id() -> str:
    return secrets.token_hex(8)


@dataclass
class Turn:
    """One request's answer, as `POST /v1/assist` returns it."""

    request_id: str
    transcript: str
    intent: dict[str, Any] | None
    changes: list[dict[str, Any]]
    reply_text: str
    audio_url: str | None
    timings: dict[str, float]
    plan: dict[str, Any] | None
    heard: dict[str, Any] = field(default_factory=dict)  # why a transcript is empty, ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "transcript": self.transcript,
            "intent": self.intent,
            "changes": self.changes,
            "reply": {"text": self.reply_text, "audio_url": self.audio_url},
            "timings": self.timings,
            "plan": self.plan,
            **({"heard": self.heard} if self.heard else {}),
        }


@dataclass
class Answer:
    """What the assistant does and says for one sentence (stage 2-3)."""

    intent: Intent | None
    changes: list[dict[str, Any]]
    text: str
    plan: dict[str, Any] | None
    timings: dict[str, float]

    def intent_dict(self) -> dict[str, Any] | None:
        return None if self.intent is None else asdict(self.intent)


class VoiceAssistant:
    def __init__(self, settings: Settings, manager: ClusterManager, home: HomeService) -> None:
        self.settings, self.manager, self.home = settings, manager, home
        self.replies = ReplyAudio()
        self.stt: SpeechToText | None = None
        self.tts: TextToSpeech | None = None
        self._tts_lock = threading.Lock()  # one piper session; calls are serialised
        self._loop: asyncio.AbstractEventLoop | None = None
        cache = Path(settings.cache_dir).expanduser() / "intents"
        self.intents = IntentRecognizer(
            home.home,
            self._embed_from_thread,
            cache,
            settings.intent_threshold,
            embed_model=settings.embed_model,
        )

    # ----- start-up -----

    async def start(self) -> None:
        """Load the speech models and train (or load) the intent classifier."""
        self._loop = asyncio.get_running_loop()
        started = time.perf_counter()
        stt, tts = await asyncio.gather(
            asyncio.to_thread(SpeechToText.from_settings, self.settings),
            asyncio.to_thread(TextToSpeech.from_settings, self.settings),
        )
        stt.set_vocabulary(vocabulary(self.home))
        self.stt, self.tts = stt, tts
        await asyncio.to_thread(self.intents.prepare)
        log.info("voice pipeline ready in %.1f s", time.perf_counter() - started)

    def _embed_from_thread(self, texts: list[str]) -> Any:
        """The classifier's embeddings, computed on the cluster (called from a worker thread:
        the request goes through the event loop like any other)."""
        assert self._loop is not None, "start() first"
        future = asyncio.run_coroutine_threadsafe(
            embed(self.manager, self.settings.embed_model, texts, self.settings.request_timeout_s),
            self._loop,
        )
        out = future.result()
        work = _cluster_work.get(None)
        if work is not None:
            work.append({"plan": out.plan, "ms": out.timings.get("total_ms", 0.0)})
        return out.vectors

    # ----- stages -----

    async def hear(self, samples: np.ndarray) -> Transcript:
        """What was said: the transcript, read as a home command when one of Whisper's close
        alternatives is one and its best reading is not (IntentRecognizer.reading)."""
        assert self.stt is not None, "start() first"
        heard = await asyncio.to_thread(self.stt.transcribe, samples)
        return await asyncio.to_thread(self.intents.reading, heard)

    async def answer(
        self,
        text: str,
        request_id: str,
        on_text: Callable[[str], None] | None = None,
        history: list[dict[str, str]] | None = None,
        cancel: threading.Event | None = None,
    ) -> Answer:
        """Recognise `text` and act on it, or converse. `on_text` hears a conversational reply
        as it is generated (on a worker thread), so speech can start before it ends."""
        work: list[dict[str, Any]] = []
        token = _cluster_work.set(work)
        try:
            t0 = time.perf_counter()
            intent = await asyncio.to_thread(self.intents.recognize, text)
            intent_ms = (time.perf_counter() - t0) * 1e3
        finally:
            _cluster_work.reset(token)
        if intent is not None:
            outcome = await self.home.handle(intent, request_id)
            changes = [asdict(c) for c in outcome.changes]
            reply, plan = outcome.speech, (work[-1]["plan"] if work else None)
            if on_text is not None and reply:
                on_text(reply)
        else:
            intent_ms -= sum(w["ms"] for w in work)  # classifier embeddings count as cluster
            answered = await chat(
                self.manager,
                self.settings.generate_model,
                conversation.messages(self.home, text, history),
                SamplingParams(max_new_tokens=self.settings.reply_max_tokens),
                self.settings.request_timeout_s,
                on_text=on_text,
                cancel=cancel,
            )
            work.append({"plan": answered.plan, "ms": answered.timings.get("total_ms", 0.0)})
            intent = Intent("conversation", {}, "conversation", 1.0)
            changes, reply, plan = [], answered.text.strip(), answered.plan
        timings = {
            "intent_ms": round(max(0.0, intent_ms), 2),
            "cluster_ms": round(sum(w["ms"] for w in work), 2),
        }
        return Answer(intent, changes, reply, plan, timings)

    def speak(self, text: str | Iterable[str]) -> Iterator[Spoken]:
        """The reply's audio sentence by sentence (blocking; call from a thread)."""
        assert self.tts is not None, "start() first"
        with self._tts_lock:
            yield from self.tts.stream(text)

    async def speak_all(self, text: str) -> tuple[bytes, float]:
        """The whole reply as one WAV file, and the ms it took."""
        assert self.tts is not None, "start() first"
        t0 = time.perf_counter()

        def whole() -> bytes:
            with self._tts_lock:
                assert self.tts is not None
                return self.tts.synthesize(text)

        wav = await asyncio.to_thread(whole)
        return wav, (time.perf_counter() - t0) * 1e3

    # ----- whole turns -----

    async def text_turn(
        self, text: str, request_id: str | None = None, *, speak: bool = True
    ) -> Turn:
        started = time.perf_counter()
        rid = request_id or new_request_id()
        answer = await self.answer(text, rid)
        return await self._finish(rid, text, answer, {"stt_ms": 0.0}, started, speak)

    async def audio_turn(
        self, samples: np.ndarray, request_id: str | None = None, *, speak: bool = True
    ) -> Turn:
        started = time.perf_counter()
        rid = request_id or new_request_id()
        heard = await self.hear(samples)
        timings = {"stt_ms": round(heard.ms, 2)}
        if not heard.text:
            answer = Answer(None, [], NOTHING_HEARD, None, {"intent_ms": 0.0, "cluster_ms": 0.0})
            turn = await self._finish(rid, "", answer, timings, started, speak)
            turn.heard = {"reason": heard.reason, "duration_s": round(heard.duration_s, 2)}
            return turn
        answer = await self.answer(heard.text, rid)
        turn = await self._finish(rid, heard.text, answer, timings, started, speak)
        if heard.first_guess is not None:
            turn.heard = {"first_guess": heard.first_guess}
        return turn

    async def _finish(
        self,
        rid: str,
        transcript: str,
        answer: Answer,
        timings: dict[str, float],
        started: float,
        speak: bool,
    ) -> Turn:
        timings = {**timings, **answer.timings, "tts_ms": 0.0}
        url = None
        if speak and answer.text:
            wav, timings["tts_ms"] = await self.speak_all(answer.text)
            self.replies.put(rid, wav)
            url = f"/v1/audio/{rid}.wav"
        timings = {k: round(v, 2) for k, v in timings.items()}
        timings["total_ms"] = round((time.perf_counter() - started) * 1e3, 2)
        return Turn(
            rid,
            transcript,
            answer.intent_dict(),
            answer.changes,
            answer.text,
            url,
            timings,
            answer.plan,
        )
