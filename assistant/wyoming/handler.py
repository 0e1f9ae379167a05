"""One Wyoming client connection: events in, the gateway's pipeline, events out.

    describe                                   -> info
    ping                                       -> pong
    transcribe? audio-start? audio-chunk* audio-stop
                                               -> transcript {text, language: "en"}
    synthesize {text}                          -> audio-start, audio-chunk*, audio-stop
    synthesize-start, synthesize-chunk*, synthesize-stop
                                               -> audio-start, audio-chunk*, audio-stop,
                                                  synthesize-stopped (audio while text comes)
    recognize {text}                           -> intent {name, entities} | not-recognized
    transcript {text}  (a handle request, as Home Assistant's conversation agent sends it)
                                               -> handled {text} | not-handled {text}

Audio is taken at the client's rate, width and channels (recording.py). Events this server
does not serve are ignored, as Wyoming servers do. Anything wrong with one request (a malformed
event, audio in a format not read here, too much of it, a field of the wrong type, a failure
of the pipeline) is answered with an `error` event {text, code} and the connection goes on;
only a stream that cannot be read further (framing.py) ends the connection, after its `error`.
An utterance refused midway is ended by `audio-stop` with an empty transcript, so a client
waiting for one does not hang. Each request is written to the request log (kind "wyoming").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.intent import Entity, Intent, NotRecognized, Recognize
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from assistant.api.state import GatewayState
from assistant.errors import InvalidInput, TooLarge
from assistant.voice.pipeline import new_request_id
from assistant.wyoming.framing import BadEvent, BrokenStream, read_event
from assistant.wyoming.recording import Recording
from assistant.wyoming.synthesis import Speaker
from edge_worker.errors import GalaxyError

log = logging.getLogger(__name__)

NOT_RECOGNIZED = "Sorry, I don't know how to do that."


class WyomingHandler(AsyncEventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        state: GatewayState,
        info: Info,
    ) -> None:
        super().__init__(reader, writer)
        assert state.voice is not None, "the voice pipeline has started"
        self.state, self.voice, self.settings = state, state.voice, state.settings
        self.info_event = info.event()
        self.max_bytes = int(self.settings.max_upload_mb * 2**20)
        self.peer = writer.get_extra_info("peername")
        self._recording: Recording | None = None
        self._refused = False  # the utterance in progress was refused: wait for its audio-stop
        self._speaker: Speaker | None = None  # a streamed synthesis in progress
        self._streamed_chars = 0
        self._stream_started = 0.0
        # When this connection started waiting for a client's next request (monotonic s), or
        # None while it is in one (an answer, an utterance, a streamed synthesis): the server
        # closes the longest idle connection to make room for a new one (server.py).
        self.idle_since: float | None = time.monotonic()

    # ----- the connection -----

    async def run(self) -> None:
        """Read and answer events until the client leaves or the stream breaks."""
        try:
            while True:
                between = self._recording is None and self._speaker is None
                self.idle_since = time.monotonic() if between and not self._refused else None
                try:
                    event = await read_event(self.reader, self.max_bytes)
                except BadEvent as exc:
                    await self._error(exc.code, str(exc))
                    continue
                except BrokenStream as exc:
                    log.warning("Wyoming client %s: %s", self.peer, exc)
                    await self._error(exc.code, str(exc))
                    return
                if event is None:
                    return
                self.idle_since = None
                await self._answer(event)
        except ConnectionError:
            log.debug("Wyoming client %s left mid-answer", self.peer)
        finally:
            await self.disconnect()
            self.writer.close()

    async def _answer(self, event: Event) -> None:
        try:
            await self.handle_event(event)
        except ConnectionError:
            raise  # the client left: nobody to tell
        except GalaxyError as exc:
            await self._error(type(exc).__name__, str(exc))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a field's type
            await self._error("bad_event", f"a {event.type} event with bad data: {exc!r}")
        except Exception as exc:  # a defect here must not end the connection, nor the gateway
            log.exception("Wyoming client %s: %s event failed", self.peer, event.type)
            await self._error("internal_error", f"{type(exc).__name__}: {exc}")

    async def disconnect(self) -> None:
        if self._speaker is not None:
            speaker, self._speaker = self._speaker, None
            await speaker.cancel()

    async def _error(self, code: str, text: str) -> None:
        log.info("Wyoming client %s: %s: %s", self.peer, code, text)
        await self.write_event(Error(text=text, code=code).event())

    # ----- events -----

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        if Describe.is_type(kind):
            await self.write_event(self.info_event)
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(kind):
            self._transcribe(Transcribe.from_event(event))
        elif AudioStart.is_type(kind):
            self._audio_start(event.data)
        elif AudioChunk.is_type(kind):
            self._audio_chunk(event.data, event.payload or b"")
        elif AudioStop.is_type(kind):
            await self._audio_stop()
        elif Synthesize.is_type(kind):
            if self._speaker is None:  # inside a stream it only repeats the text: skip it
                await self._synthesize(_text(event))
        elif SynthesizeStart.is_type(kind):
            await self._stream_start()
        elif SynthesizeChunk.is_type(kind):
            self._stream_chunk(_text(event))
        elif SynthesizeStop.is_type(kind):
            await self._stream_stop()
        elif Recognize.is_type(kind):
            await self._recognize(_text(event))
        elif Transcript.is_type(kind):
            await self._handle(_text(event))
        else:
            log.debug("Wyoming client %s: ignored a %s event", self.peer, kind)
        return True

    # ----- speech-to-text -----

    def _transcribe(self, request: Transcribe) -> None:
        self._new_recording()
        language = request.language
        if language and not language.lower().startswith("en"):
            self._refused = True
            raise InvalidInput(f"speech in {language!r} is not understood here: only English")

    def _new_recording(self) -> Recording:
        self._refused = False
        self._recording = Recording(self.settings.max_audio_s, self.max_bytes)
        return self._recording

    def _audio_start(self, data: dict[str, Any]) -> None:
        if self._refused:
            return  # refused at `transcribe`; the error went out then
        recording = self._recording
        if recording is None or recording.duration_s > 0:  # no transcribe, or a new utterance
            recording = self._new_recording()
        self._guarded(lambda: recording.start(data))

    def _audio_chunk(self, data: dict[str, Any], audio: bytes) -> None:
        if self._refused:
            return  # the error went out with the first refused chunk
        recording = self._recording or self._new_recording()
        self._guarded(lambda: recording.add(data, audio))

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except GalaxyError:
            self._refused = True
            raise

    async def _audio_stop(self) -> None:
        recording, refused = self._recording, self._refused
        self._recording, self._refused = None, False
        started = time.perf_counter()
        samples = (
            None if refused or recording is None else await asyncio.to_thread(recording.samples)
        )
        if samples is None or samples.size == 0:  # refused, or no audio at all
            await self.write_event(Transcript(text="", language="en").event())
            return
        heard = await self.voice.hear(samples)
        await self.write_event(Transcript(text=heard.text, language="en").event())
        self._log(
            "stt",
            {"stt_ms": heard.ms, "total_ms": (time.perf_counter() - started) * 1e3},
        )

    # ----- text-to-speech -----

    async def _synthesize(self, text: str) -> None:
        """The whole stream of audio events for `text` (a stream without chunks if blank)."""
        self._check_length(len(text))
        started = time.perf_counter()
        speaker = Speaker(self.voice, self.write_event, self.settings.request_timeout_s)
        speaker.feed(text)
        await speaker.finish()
        self._log_speech(speaker, started)

    async def _stream_start(self) -> None:
        if self._speaker is not None:  # a second start: the first stream ends here
            await self._stream_stop()
        self._streamed_chars = 0
        self._stream_started = time.perf_counter()
        self._speaker = Speaker(self.voice, self.write_event, self.settings.request_timeout_s)

    def _stream_chunk(self, text: str) -> None:
        if self._speaker is None:
            raise InvalidInput("a synthesize-chunk outside a stream: send synthesize-start first")
        self._streamed_chars += len(text)
        self._check_length(self._streamed_chars)
        self._speaker.feed(text)

    async def _stream_stop(self) -> None:
        speaker, self._speaker = self._speaker, None
        if speaker is None:
            raise InvalidInput("a synthesize-stop outside a stream: send synthesize-start first")
        try:
            await speaker.finish()
        finally:
            await self.write_event(SynthesizeStopped().event())
        self._log_speech(speaker, self._stream_started)

    def _check_length(self, chars: int) -> None:
        if chars > self.settings.max_text_chars:
            raise TooLarge(
                f"{chars} characters to speak; this gateway speaks up to "
                f"{self.settings.max_text_chars} (GALAXY_MAX_TEXT_CHARS)"
            )

    def _log_speech(self, speaker: Speaker, started: float) -> None:
        total_ms = (time.perf_counter() - started) * 1e3
        self._log("tts", {"tts_ms": speaker.tts_ms, "total_ms": total_ms})

    # ----- intents and the home -----

    async def _recognize(self, text: str) -> None:
        self._check_length(len(text))
        started = time.perf_counter()
        intent = await asyncio.to_thread(self.voice.intents.recognize, text) if text else None
        if intent is None:
            await self.write_event(NotRecognized(text=NOT_RECOGNIZED).event())
        else:
            entities = [Entity(name=slot, value=value) for slot, value in intent.slots.items()]
            await self.write_event(Intent(name=intent.name, entities=entities).event())
        self._log("intent", {"intent_ms": (time.perf_counter() - started) * 1e3})

    async def _handle(self, text: str) -> None:
        """Act on a sentence (or answer it), as `POST /v1/assist` does without the audio."""
        self._check_length(len(text))
        if not text.strip():
            await self.write_event(NotHandled(text="There was nothing to act on.").event())
            return
        started = time.perf_counter()
        try:
            answer = await self.voice.answer(text.strip(), new_request_id())
        except GalaxyError as exc:
            await self.write_event(NotHandled(text=f"Sorry, that failed: {exc}").event())
            self._log("handle", {}, status="failed", error=str(exc))
            return
        await self.write_event(Handled(text=answer.text).event())
        timings = {**answer.timings, "total_ms": (time.perf_counter() - started) * 1e3}
        self._log("handle", timings, plan=answer.plan)

    # ----- the request log -----

    def _log(
        self,
        what: str,
        timings: dict[str, float],
        *,
        status: str = "ok",
        plan: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        rounded = {k: round(v, 2) for k, v in timings.items()}
        self.state.store.log_request("wyoming", what, status, rounded, plan, error)


def _text(event: Event) -> str:
    text = event.data.get("text")
    if not isinstance(text, str):
        raise InvalidInput(f'a {event.type} event needs "text" (a string)')
    return text
