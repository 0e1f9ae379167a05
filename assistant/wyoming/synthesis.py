"""Text-to-speech over Wyoming: the gateway's voice, sentence by sentence, as audio events.

`Speaker(voice, write)` speaks text pieces on a worker thread (the pipeline's `speak`, which
holds the one piper session) and writes, on the event loop as each sentence is ready:

    audio-start {rate, width: 2, channels: 1}
    audio-chunk (up to SAMPLES_PER_CHUNK samples each; a sentence never shares a chunk)
    ...
    audio-stop

`audio-start` and `audio-stop` are written even when the text has nothing to say, so a client
always sees a whole stream. `feed(text)` adds a piece (a streamed `synthesize-chunk`);
`finish()` ends the text and returns once `audio-stop` is written. The pieces must come within
`deadline_s` of the start: past it the speech ends with what was said and `finish()` raises
`DeadlineExceeded`, so a client that stops sending cannot hold the voice (one piper session is
shared by the whole gateway) for longer than a request may take.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import Awaitable, Callable, Iterator

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event

from assistant.errors import DeadlineExceeded
from assistant.voice.pipeline import VoiceAssistant
from assistant.voice.tts import Spoken

SAMPLES_PER_CHUNK = 4096  # 0.19 s at 22.05 kHz
WIDTH, CHANNELS = 2, 1  # the voice's s16le mono


class Speaker:
    def __init__(
        self,
        voice: VoiceAssistant,
        write: Callable[[Event], Awaitable[None]],
        deadline_s: float,
    ) -> None:
        assert voice.tts is not None, "the voice pipeline has started"
        self.voice, self.write = voice, write
        self.rate = voice.tts.sample_rate
        self.tts_ms = 0.0  # synthesis time (of streamed text: with the waits for its pieces)
        self.sentences = 0
        self._text: queue.Queue[str | None] = queue.Queue()
        self._deadline = time.monotonic() + deadline_s
        self._timed_out = False
        self._ready: asyncio.Queue[Spoken | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._worker = asyncio.create_task(asyncio.to_thread(self._speak))
        self._sender = asyncio.create_task(self._send())

    def feed(self, text: str) -> None:
        self._text.put(text)

    async def finish(self) -> None:
        """End the text; return when the last sentence's audio and `audio-stop` are written."""
        self._text.put(None)
        try:
            await self._worker
        finally:
            await self._sender
        if self._timed_out:
            raise DeadlineExceeded("the text to speak did not end (synthesize-stop) in time")

    async def cancel(self) -> None:
        """The client left: stop after the sentence being synthesised, write nothing more."""
        self._text.put(None)
        self._sender.cancel()
        with contextlib.suppress(Exception):
            await self._worker
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await self._sender

    # ----- worker thread -----

    def _pieces(self) -> Iterator[str]:
        while True:
            try:
                piece = self._text.get(timeout=max(0.0, self._deadline - time.monotonic()))
            except queue.Empty:
                self._timed_out = True
                return
            if piece is None:
                return
            yield piece

    def _speak(self) -> None:
        loop = self._loop
        try:
            sentences = self.voice.speak(self._pieces())
            while True:
                t0 = time.perf_counter()
                spoken = next(sentences, None)
                if spoken is None:
                    return
                # With streamed text this includes waiting for the text's next piece.
                self.tts_ms += (time.perf_counter() - t0) * 1e3
                loop.call_soon_threadsafe(self._ready.put_nowait, spoken)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the gateway stopped
                loop.call_soon_threadsafe(self._ready.put_nowait, None)

    # ----- event loop -----

    async def _send(self) -> None:
        await self.write(AudioStart(rate=self.rate, width=WIDTH, channels=CHANNELS).event())
        timestamp = 0
        while (spoken := await self._ready.get()) is not None:
            self.sentences += 1
            step = SAMPLES_PER_CHUNK * WIDTH * CHANNELS
            for at in range(0, len(spoken.pcm), step):
                chunk = AudioChunk(
                    rate=spoken.sample_rate,
                    width=WIDTH,
                    channels=CHANNELS,
                    audio=spoken.pcm[at : at + step],
                    timestamp=timestamp,
                )
                await self.write(chunk.event())
                timestamp += chunk.milliseconds
        await self.write(AudioStop(timestamp=timestamp).event())
