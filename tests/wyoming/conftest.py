"""A real gateway with the sample home and its Wyoming server on a free port of 127.0.0.1, and
helpers to talk to it as Home Assistant does (`wyoming.client.AsyncTcpClient`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from assistant.home.loader import sample_home_path
from assistant.launcher import RunningGateway, free_port
from assistant.wyoming import WyomingServer
from tests.gateway.conftest import gateway_settings
from tests.voice.speech import pcm

HOME_NAME = f"wyoming test home {uuid.uuid4().hex[:8]}"  # ours, among any other on loopback


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("wyoming")
    settings = gateway_settings(
        root,
        home_file=sample_home_path(),
        home_name=HOME_NAME,
        wyoming=True,
        wyoming_port=free_port(),
        max_audio_s=8,
        max_upload_mb=1,
    )
    with RunningGateway(settings) as gw:
        yield gw


def wyoming_of(gw: RunningGateway) -> WyomingServer:
    server = gw.state.extras.get("wyoming")
    assert isinstance(server, WyomingServer), "the gateway started its Wyoming server"
    return server


def client(gw: RunningGateway) -> AsyncTcpClient:
    server = wyoming_of(gw)
    return AsyncTcpClient(server.host, server.port)


async def next_event(c: AsyncTcpClient, timeout: float = 60.0) -> Event:
    event = await asyncio.wait_for(c.read_event(), timeout)
    assert event is not None, "the server closed the connection"
    return event


async def events_until(c: AsyncTcpClient, last: str, timeout: float = 60.0) -> list[Event]:
    """Every event up to and including the first of type `last`."""
    events: list[Event] = []
    while not events or events[-1].type != last:
        events.append(await next_event(c, timeout))
    return events


def audio_events(
    samples: np.ndarray, rate: int, channels: int = 1, samples_per_chunk: int = 1024
) -> list[Event]:
    """`samples` (float mono) as a client sends them: audio-start, 16-bit chunks, audio-stop;
    with 2 channels, the same samples on both."""
    frames = np.repeat(samples[:, None], channels, axis=1).reshape(-1)  # interleaved
    data = pcm(frames)
    step = samples_per_chunk * 2 * channels
    return [
        AudioStart(rate=rate, width=2, channels=channels).event(),
        *(
            AudioChunk(rate=rate, width=2, channels=channels, audio=data[i : i + step]).event()
            for i in range(0, len(data), step)
        ),
        AudioStop().event(),
    ]
