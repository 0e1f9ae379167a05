"""Bad input over Wyoming gets an `error` event; the connection (or at least the server and
the gateway) carries on."""

from __future__ import annotations

import asyncio
import json

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart

from assistant.launcher import RunningGateway
from tests.wyoming.conftest import client, events_until, next_event, wyoming_of


async def raw_connection(gw: RunningGateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    server = wyoming_of(gw)
    return await asyncio.open_connection(server.host, server.port)


async def read(reader: asyncio.StreamReader) -> Event | None:
    return await asyncio.wait_for(async_read_event(reader), 30)


async def test_a_malformed_event_gets_an_error_and_the_connection_still_answers(
    gateway: RunningGateway,
) -> None:
    reader, writer = await raw_connection(gateway)
    try:
        writer.write(b"this is not json\n")
        writer.write(json.dumps({"data": {"text": "no type"}}).encode() + b"\n")
        await async_write_event(Describe().event(), writer)

        first, second, third = [await read(reader) for _ in range(3)]
    finally:
        writer.close()

    assert first is not None and Error.is_type(first.type)
    assert Error.from_event(first).code == "bad_event"
    assert second is not None and Error.is_type(second.type)
    assert third is not None and Info.is_type(third.type)


async def test_audio_in_a_format_not_read_here_gets_an_error_and_an_empty_transcript(
    gateway: RunningGateway,
) -> None:
    async with client(gateway) as c:
        await c.write_event(Transcribe().event())
        await c.write_event(AudioStart(rate=16000, width=5, channels=1).event())
        await c.write_event(AudioChunk(rate=16000, width=5, channels=1, audio=b"\0" * 500).event())
        await c.write_event(AudioStop().event())
        error = await next_event(c)
        transcript = await next_event(c)
        await c.write_event(Describe().event())
        info = await next_event(c)

    assert Error.is_type(error.type) and Error.from_event(error).code == "UnsupportedAudio"
    assert "width 2" in Error.from_event(error).text
    assert Transcript.is_type(transcript.type) and Transcript.from_event(transcript).text == ""
    assert Info.is_type(info.type)


async def test_audio_longer_than_the_limit_is_refused_with_its_length(
    gateway: RunningGateway,
) -> None:
    second = b"\0\0" * 16000
    async with client(gateway) as c:
        await c.write_event(Transcribe().event())
        for _ in range(10):  # 10 s; the gateway takes 8 s
            await c.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=second).event())
        await c.write_event(AudioStop().event())
        events = await events_until(c, "transcript")

    errors = [Error.from_event(e) for e in events if Error.is_type(e.type)]
    assert [e.code for e in errors] == ["TooLarge"] and "8 s" in errors[0].text


async def test_a_payload_over_the_limit_ends_that_connection_but_not_the_server(
    gateway: RunningGateway,
) -> None:
    reader, writer = await raw_connection(gateway)
    try:
        header = {"type": "audio-chunk", "payload_length": 10 * 2**30}  # 10 GiB announced
        writer.write(json.dumps(header).encode() + b"\n")
        error = await read(reader)
        closed = await read(reader)
    finally:
        writer.close()

    async with client(gateway) as c:
        await c.write_event(Describe().event())
        info = await next_event(c)
    assert error is not None and Error.from_event(error).code == "too_large"
    assert closed is None
    assert Info.is_type(info.type)
    assert gateway.call("GET", "/v1/health")["status"] == "ok"


async def test_a_field_of_the_wrong_type_gets_an_error(gateway: RunningGateway) -> None:
    async with client(gateway) as c:
        await c.write_event(Event(type="synthesize", data={"text": ["not", "a", "string"]}))
        error = await next_event(c)
        await c.write_event(Synthesize(text="").event())
        empty = await events_until(c, "audio-stop")

    assert Error.is_type(error.type) and Error.from_event(error).code == "InvalidInput"
    assert [e.type for e in empty] == ["audio-start", "audio-stop"]


async def test_an_utterance_without_audio_gets_an_empty_transcript(gateway: RunningGateway) -> None:
    async with client(gateway) as c:
        await c.write_event(Transcribe().event())
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await c.write_event(AudioStop().event())
        event = await next_event(c)

    assert Transcript.is_type(event.type) and Transcript.from_event(event).text == ""


async def test_speech_in_another_language_is_refused_and_the_utterance_ends_empty(
    gateway: RunningGateway,
) -> None:
    async with client(gateway) as c:
        await c.write_event(Transcribe(language="de").event())
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await c.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=b"\0" * 3200).event())
        await c.write_event(AudioStop().event())
        events = await events_until(c, "transcript")

    errors = [Error.from_event(e) for e in events if Error.is_type(e.type)]
    assert [e.code for e in errors] == ["InvalidInput"] and "only English" in errors[0].text
    assert Transcript.from_event(events[-1]).text == ""


async def test_a_client_that_leaves_mid_stream_does_not_hold_the_voice(
    gateway: RunningGateway,
) -> None:
    async with client(gateway) as c:
        await c.write_event(SynthesizeStart().event())
        await c.write_event(SynthesizeChunk(text="This sentence never ends because").event())
        await next_event(c)  # audio-start: the stream holds the voice now

    async with client(gateway) as c:
        await c.write_event(Synthesize(text="Still speaking.").event())
        events = await events_until(c, "audio-stop", timeout=20)

    assert any(e.type == "audio-chunk" for e in events)
