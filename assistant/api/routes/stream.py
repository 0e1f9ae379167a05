"""`WS /v1/assist/stream`: a satellite streams its microphone, the assistant answers in speech.

Client -> server:
- binary frames: 16 kHz, 16-bit little-endian, mono PCM, any chunk size;
- text `{"type": "end"}`: the audio has ended (no need to wait for trailing silence).

Server -> client, JSON text frames:
    {"type": "ready", "sample_rate": 16000, "wake_word": null | "okay_nabu"}
    {"type": "wake"}                          (with a wake word: heard it; the command follows)
    {"type": "vad_start"} / {"type": "vad_end"}
    {"type": "transcript", "text": ...}
    {"type": "audio_start", "rate": 22050, "format": "s16le", "channels": 1}
    binary frames: the reply's audio, one per sentence, sent as soon as it is synthesised
    {"type": "intent", "intent": {...}} / {"type": "changes", "changes": [...]}
    {"type": "reply_text", "text": ...}
    {"type": "audio_end"}
    {"type": "done", "request_id": ..., "timings": {...}, "plan": ...}
    {"type": "error", "code": ..., "text": ...}   (then the stream goes on listening)

The socket stays open for the next command. The token comes as `Authorization: Bearer` or,
for browsers (which cannot set headers on a websocket), as `?token=`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import time
from collections.abc import MutableMapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

from assistant.api.deps import scope_of
from assistant.api.state import GatewayState
from assistant.voice.audio import pcm16_to_float
from assistant.voice.listen import Listener
from assistant.voice.pipeline import NOTHING_HEARD, VoiceAssistant, new_request_id
from assistant.voice.tts import Spoken
from edge_worker.errors import GalaxyError

router = APIRouter(tags=["assist"])
log = logging.getLogger(__name__)
MAX_FRAME = 1 << 20  # bytes of PCM in one frame (32 s); larger frames are refused


def authorized(ws: WebSocket, state: GatewayState, *, write: bool = False) -> bool:
    """The websocket's token (header, or `?token=` for browsers) allows this: any valid token
    to watch, a full one to act (`write`)."""
    header = ws.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else ws.query_params.get("token")
    scope = scope_of(state, token, ws.client.host if ws.client else "")
    return scope == "full" or (scope == "read" and not write)


@router.websocket("/assist/stream")
async def assist_stream(ws: WebSocket) -> None:
    state: GatewayState = ws.app.state.gateway
    if not authorized(ws, state, write=True):
        await ws.close(status.WS_1008_POLICY_VIOLATION, "missing, invalid or read-only API token")
        return
    voice = state.voice
    if voice is None or voice.tts is None:
        await ws.close(status.WS_1013_TRY_AGAIN_LATER, "the voice pipeline is still loading")
        return
    await ws.accept()
    listener = Listener(state.settings.wake_word)
    await ws.send_json(
        {"type": "ready", "sample_rate": 16000, "wake_word": state.settings.wake_word}
    )
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            events = await _listen(ws, listener, message)
            for event in events:
                if event.kind == "wake":
                    await ws.send_json({"type": "wake"})
                elif event.kind == "start":
                    await ws.send_json({"type": "vad_start"})
                elif event.kind == "timeout":
                    await _turn(ws, state, voice, None)
                elif event.kind == "end":
                    await ws.send_json({"type": "vad_end"})
                    await _turn(ws, state, voice, event.audio)
    except WebSocketDisconnect:
        return


async def _listen(
    ws: WebSocket, listener: Listener, message: MutableMapping[str, Any]
) -> list[Any]:
    data = message.get("bytes")
    if data is not None:
        if len(data) > MAX_FRAME or len(data) % 2:
            await _error(
                ws,
                "bad_audio",
                f"a frame of {len(data)} bytes: send 16-bit PCM "
                f"in frames of at most {MAX_FRAME} bytes",
            )
            return []
        return await asyncio.to_thread(listener.process, data)
    try:
        text = json.loads(message.get("text") or "")
    except ValueError:
        text = None
    if isinstance(text, dict) and text.get("type") == "end":
        return await asyncio.to_thread(listener.close)
    await _error(ws, "bad_message", 'text frames are {"type": "end"}; audio goes in binary frames')
    return []


async def _error(ws: WebSocket, code: str, text: str) -> None:
    await ws.send_json({"type": "error", "code": code, "text": text})


async def _turn(
    ws: WebSocket, state: GatewayState, voice: VoiceAssistant, pcm: bytes | None
) -> None:
    """Transcribe one utterance, act or converse, and speak the reply while it is made."""
    started = time.perf_counter()
    rid = new_request_id()
    timings: dict[str, float] = {
        "stt_ms": 0.0,
        "intent_ms": 0.0,
        "cluster_ms": 0.0,
        "tts_ms": 0.0,
        "tts_wait_ms": 0.0,
    }
    text = ""
    if pcm:
        heard = await voice.hear(pcm16_to_float(pcm))
        text, timings["stt_ms"] = heard.text, heard.ms
    await ws.send_json({"type": "transcript", "text": text})
    pieces: queue.Queue[str | None] = queue.Queue()
    spoken: asyncio.Queue[Spoken | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def speak() -> None:  # a worker thread: sentences out as the text comes in
        sentences = voice.speak(_timed_pieces(pieces, timings))
        try:
            while True:
                t0 = time.perf_counter()
                s = next(sentences, None)
                if s is None:
                    return
                timings["tts_ms"] += (time.perf_counter() - t0) * 1e3  # less the waits below
                loop.call_soon_threadsafe(spoken.put_nowait, s)
        finally:
            loop.call_soon_threadsafe(spoken.put_nowait, None)

    speaker = asyncio.create_task(asyncio.to_thread(speak))
    sender = asyncio.create_task(_send_audio(ws, spoken, timings, started))
    answer = None
    try:
        if text:
            answer = await voice.answer(text, rid, on_text=pieces.put)
        else:
            pieces.put(NOTHING_HEARD)
    except GalaxyError as exc:
        await _error(ws, type(exc).__name__, str(exc))
    finally:
        pieces.put(None)
        await speaker
        await sender
    reply = answer.text if answer is not None else NOTHING_HEARD
    if answer is not None:
        timings.update(answer.timings)
        await ws.send_json({"type": "intent", "intent": answer.intent_dict()})
        await ws.send_json({"type": "changes", "changes": answer.changes})
    await ws.send_json({"type": "reply_text", "text": reply})
    timings["tts_ms"] -= timings.pop("tts_wait_ms")  # synthesis only, not waiting for text
    timings["total_ms"] = (time.perf_counter() - started) * 1e3
    timings = {k: round(v, 2) for k, v in timings.items()}
    plan = answer.plan if answer is not None else None
    state.store.log_request("assist", "stream", "ok", timings, plan)
    await ws.send_json({"type": "done", "request_id": rid, "timings": timings, "plan": plan})


def _timed_pieces(pieces: queue.Queue[str | None], timings: dict[str, float]) -> Any:
    """The reply's text as it comes (None ends it), counting the time spent waiting for it."""
    while True:
        t0 = time.perf_counter()
        piece = pieces.get()
        timings["tts_wait_ms"] += (time.perf_counter() - t0) * 1e3
        if piece is None:
            return
        yield piece


async def _send_audio(
    ws: WebSocket,
    spoken: asyncio.Queue[Spoken | None],
    timings: dict[str, float],
    started: float,
) -> None:
    first = True
    while (s := await spoken.get()) is not None:
        if first:
            timings["first_audio_ms"] = (time.perf_counter() - started) * 1e3
            await ws.send_json(
                {"type": "audio_start", "rate": s.sample_rate, "format": "s16le", "channels": 1}
            )
            first = False
        await ws.send_bytes(s.pcm)
    if not first:
        await ws.send_json({"type": "audio_end"})
