"""The gateway's voice stages through a real Wyoming client, as Home Assistant uses them:
describe, speech-to-text of piper's speech at the client's own format, text-to-speech streamed
sentence by sentence, intent recognition, and a command handled by the home."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.handle import Handled
from wyoming.info import Describe, Info
from wyoming.intent import Intent, NotRecognized, Recognize
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from assistant.launcher import RunningGateway
from tests.voice.speech import COMMAND, padded, words
from tests.wyoming.conftest import audio_events, client, events_until, next_event


def audio_of(events: list[Any]) -> tuple[AudioStart, list[AudioChunk]]:
    starts = [AudioStart.from_event(e) for e in events if AudioStart.is_type(e.type)]
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    assert len(starts) == 1 and AudioStop.is_type(events[-1].type), [e.type for e in events]
    return starts[0], chunks


def light(gw: RunningGateway, device_id: str) -> dict[str, Any]:
    devices = gw.call("GET", "/v1/home")["devices"]
    return dict(next(d for d in devices if d["id"] == device_id)["state"])


async def test_describe_lists_speech_intents_and_handling_in_english(
    gateway: RunningGateway,
) -> None:
    async with client(gateway) as c:
        await c.write_event(Describe().event())
        info = Info.from_event(await next_event(c))

    assert [p.name for p in info.asr] == ["galaxy-stt"]
    assert info.asr[0].models[0].languages == ["en"] and info.asr[0].installed
    assert info.tts[0].voices[0].name == "en_US-joe-medium"
    assert info.intent[0].models[0].languages == ["en"]
    assert info.handle[0].supports_home_control
    assert info.asr[0].version and info.asr[0].attribution.name == "Galaxy Home"


@pytest.mark.parametrize(("rate", "channels"), [(22050, 1), (16000, 2)])
async def test_a_spoken_command_is_transcribed_at_the_clients_format(
    gateway: RunningGateway, rate: int, channels: int
) -> None:
    speech = padded(COMMAND, rate=rate)

    async with client(gateway) as c:
        await c.write_event(Transcribe(language="en").event())
        for event in audio_events(speech, rate, channels):
            await c.write_event(event)
        transcript = Transcript.from_event(await next_event(c))

    assert words(transcript.text) == words(COMMAND)


async def test_a_sentence_is_spoken_as_a_stream_of_audio_chunks(
    gateway: RunningGateway,
) -> None:
    async with client(gateway) as c:
        await c.write_event(Synthesize(text="The kitchen light is on. It is nine o'clock.").event())
        start, chunks = audio_of(await events_until(c, "audio-stop"))

    seconds = sum(c.seconds for c in chunks)
    samples = np.frombuffer(b"".join(c.audio for c in chunks), dtype="<i2")
    assert (start.rate, start.width, start.channels) == (22050, 2, 1)
    assert len(chunks) >= 2 and all(c.rate == start.rate for c in chunks)
    assert 1.5 < seconds < 10
    assert np.abs(samples).max() > 1000  # speech, not silence


async def test_the_spoken_reply_is_speech_the_server_transcribes_back(
    gateway: RunningGateway,
) -> None:
    async with client(gateway) as c:
        await c.write_event(Synthesize(text="Turn on the kitchen lights.").event())
        start, chunks = audio_of(await events_until(c, "audio-stop"))
        await c.write_event(Transcribe().event())
        await c.write_event(start.event())
        for chunk in chunks:
            await c.write_event(chunk.event())
        await c.write_event(AudioStop().event())
        transcript = Transcript.from_event(await next_event(c))

    assert words(transcript.text) == ["turn", "on", "the", "kitchen", "lights"]


async def test_streamed_text_is_spoken_as_it_comes_and_the_stream_is_closed(
    gateway: RunningGateway,
) -> None:
    async with client(gateway) as c:
        await c.write_event(SynthesizeStart().event())
        for piece in ["The garage ", "door is closed. ", "The hall ", "light is off."]:
            await c.write_event(SynthesizeChunk(text=piece).event())
        await c.write_event(
            Synthesize(text="The garage door is closed. The hall light is off.").event()
        )
        await c.write_event(SynthesizeStop().event())
        events = await events_until(c, "synthesize-stopped")

    start, chunks = audio_of(events[:-1])
    assert start.rate == 22050 and sum(c.seconds for c in chunks) > 2.0
    assert [e.type for e in events].count("audio-start") == 1  # the repeated text is not spoken


async def test_a_command_is_recognised_with_its_slots_as_entities(
    gateway: RunningGateway,
) -> None:
    async with client(gateway) as c:
        await c.write_event(Recognize(text="turn on the kitchen lights").event())
        event = await next_event(c)

    assert Intent.is_type(event.type), event
    intent = Intent.from_event(event)
    entities = {e.name: e.value for e in intent.entities}
    assert intent.name == "HassTurnOn"
    assert entities.get("area") == "kitchen" and entities.get("domain") == "light"


async def test_a_sentence_that_is_no_command_is_not_recognised(gateway: RunningGateway) -> None:
    async with client(gateway) as c:
        await c.write_event(Recognize(text="who wrote the odyssey").event())
        event = await next_event(c)

    assert NotRecognized.is_type(event.type)


async def test_a_handled_command_turns_the_kitchen_light_on(gateway: RunningGateway) -> None:
    gateway.call("POST", "/v1/home/devices/light.kitchen_ceiling", {"on": False})

    async with client(gateway) as c:
        await c.write_event(Transcript(text="turn on the kitchen lights").event())
        event = await next_event(c)

    assert Handled.is_type(event.type), event
    assert Handled.from_event(event).text
    assert light(gateway, "light.kitchen_ceiling")["on"] is True


async def test_wyoming_requests_are_in_the_request_log(gateway: RunningGateway) -> None:
    async with client(gateway) as c:
        await c.write_event(Recognize(text="turn off the hall light").event())
        await next_event(c)

    logged = gateway.call("GET", "/v1/requests")
    assert any(r["kind"] == "wyoming" and r["model"] == "intent" for r in logged)


async def test_a_question_is_handled_by_the_conversation_model(gateway: RunningGateway) -> None:
    async with client(gateway) as c:
        await c.write_event(Transcript(text="who wrote the odyssey").event())
        event = await next_event(c, timeout=300)

    assert Handled.is_type(event.type), event
    assert Handled.from_event(event).text
    handled = next(
        r
        for r in gateway.call("GET", "/v1/requests")
        if (r["kind"], r["model"]) == ("wyoming", "handle")
    )
    assert handled["plan"]["model"] == gateway.settings.generate_model
