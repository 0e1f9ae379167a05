"""The Wyoming server inside the gateway: its own TCP port, the gateway's event loop and models.

    server = await start_wyoming(state)     # None when GALAXY_WYOMING is off (or cannot listen)
    ...
    await server.stop()

Listens on `wyoming_host` (the HTTP API's host when unset) and `wyoming_port` (10300, the port
Home Assistant's Wyoming integration expects; 0: any free port, `port` says which), and
announces `_wyoming._tcp.local.` on the interfaces `mdns_interfaces` allows. One handler per
connection (handler.py), at most `MAX_CONNECTIONS` at once. A new connection beyond that closes
the connection that has waited longest for its client's next request (after an `error` saying
so), so clients that connect and say nothing cannot lock Home Assistant out; when every
connection is in the middle of a request, the new client gets an `error` and is closed. A port
already in use is logged as an error and the gateway carries on without Wyoming; an
announcement that fails is a warning (the server still answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging

from wyoming.error import Error
from wyoming.event import async_write_event

from assistant.api.state import GatewayState
from assistant.discovery.wyoming import WyomingAdvert
from assistant.wyoming.framing import MAX_HEADER
from assistant.wyoming.handler import WyomingHandler
from assistant.wyoming.info import describe

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 16


class WyomingServer:
    def __init__(self, state: GatewayState) -> None:
        assert state.voice is not None and state.voice.tts is not None, "start the voice first"
        self.state = state
        self.host = state.settings.wyoming_host or state.settings.host
        self.port = state.settings.wyoming_port
        self.info = describe(state.settings, state.voice)
        self.advert: WyomingAdvert | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], WyomingHandler] = {}

    @property
    def uri(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (raises OSError when the port is taken), then announce the service."""
        self._server = await asyncio.start_server(
            self._connected, self.host, self.port, limit=MAX_HEADER
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("Wyoming: serving speech, intents and the home at %s", self.uri)
        await self._announce()

    async def stop(self) -> None:
        """Stop announcing, stop listening, close every connection. Idempotent."""
        advert, self.advert = self.advert, None
        if advert is not None:
            await advert.stop()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def _announce(self) -> None:
        settings = self.state.settings
        interfaces = settings.mdns_interfaces
        if _loopback(self.host) and not all(_loopback(i) for i in interfaces):
            log.warning(
                "Wyoming listens on %s only, but mDNS announces it on %s: for other devices to "
                "reach it, set GALAXY_WYOMING_HOST (or GALAXY_HOST) to 0.0.0.0 or this "
                "device's address",
                self.host,
                interfaces,
            )
        try:  # an interface setting zeroconf refuses (none at all: mDNS off) lands here too
            advert = WyomingAdvert(name=settings.home_name, port=self.port, interfaces=interfaces)
            await advert.start()
        except Exception as exc:  # discovery is a convenience: Wyoming works without it
            log.warning("Wyoming: mDNS announcement is off (%s); add it by host and port", exc)
            return
        self.advert = advert

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS and not self._make_room():
            with contextlib.suppress(Exception):
                text = f"{MAX_CONNECTIONS} Wyoming clients are busy: try again later"
                await async_write_event(Error(text=text, code="busy").event(), writer)
            writer.close()
            return
        handler = WyomingHandler(reader, writer, self.state, self.info)
        self._connections[task] = handler
        try:
            await handler.run()
        finally:
            self._connections.pop(task, None)

    def _make_room(self) -> bool:
        """Close the connection idle the longest (between requests); False if none is."""
        idle = [(h.idle_since, t) for t, h in self._connections.items() if h.idle_since is not None]
        if not idle:
            return False
        _, task = min(idle, key=lambda pair: pair[0])
        handler = self._connections.pop(task)
        log.info("Wyoming: closing idle client %s to make room for a new one", handler.peer)
        text = f"closed after waiting the longest of {MAX_CONNECTIONS} clients: reconnect"
        line = json.dumps(Error(text=text, code="idle").event().to_dict()) + "\n"
        with contextlib.suppress(Exception):  # best effort: it may not be reading
            handler.writer.write(line.encode())
        # Not close(): that would wait for a client that does not read to take its bytes.
        handler.writer.transport.abort()  # its read ends, and so does its handler
        return True


async def start_wyoming(state: GatewayState) -> WyomingServer | None:
    """The running Wyoming server, or None when the settings leave it off or it cannot listen
    (logged with what to do)."""
    if not state.settings.wyoming or state.voice is None:
        return None
    server = WyomingServer(state)
    try:
        await server.start()
    except OSError as exc:
        log.error(
            "Wyoming is off: cannot listen on %s (%s); set GALAXY_WYOMING_PORT to a free port",
            server.uri,
            exc,
        )
        await server.stop()
        return None
    return server


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
