"""The gateway application: `create_app(settings)` and its lifespan.

Start-up, in order: the data dir and SQLite store; the home CA (created on first start) and the
gateway's TLS certificate; the first API token (printed once, stored hashed); the coordinator,
a wss:// endpoint that accepts only paired, unrevoked workers presenting their certificate; the
served models; mDNS. Shut-down reverses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from ssl import SSLObject

from fastapi import FastAPI
from websockets.asyncio.server import ServerConnection

from assistant.api import errors
from assistant.api.routes import (
    assist,
    cluster,
    dashboard,
    devices,
    events,
    health,
    home,
    inference,
    openai,
    pairing,
    stream,
    tokens,
)
from assistant.api.routes.metrics import router as metrics_router
from assistant.api.state import GatewayState
from assistant.cluster.coordinator import Coordinator
from assistant.cluster.linkwatch import recheck_links
from assistant.cluster.manager import ClusterManager
from assistant.config import Settings
from assistant.home.actions import HomeService
from assistant.metrics import GatewayMetrics, MetricsMiddleware
from assistant.store import Store
from assistant.trust.ca import HomeCA, peer_serial_and_name
from assistant.trust.pairing import PairingCodes
from assistant.trust.tokens import hash_token, new_token
from assistant.voice.pipeline import VoiceAssistant
from assistant.wyoming import start_wyoming
from edge_worker.errors import GalaxyError
from edge_worker.service import protocol as P

log = logging.getLogger(__name__)
WORKER_PORT_FILE = "worker_port"  # in the data dir: the port workers learned at pairing


def make_state(settings: Settings) -> GatewayState:
    """Everything but the running parts: store, CA, token, coordinator (not yet listening)."""
    data = settings.resolved_data_dir()
    store = Store(data / "gateway.sqlite3")
    home_service = HomeService.open(settings, data)  # a bad home file stops the start here
    ca = HomeCA.load_or_create(data / "ca", settings.home_name)
    own = {"127.0.0.1", "localhost", socket.gethostname(), settings.host, *_wildcard(settings.host)}
    hosts = sorted(own - {"0.0.0.0"})
    cert, key = ca.issue_server_cert(hosts)
    server_ctx = ca.server_context(cert, key, require_client_cert=True)
    first_token = None
    if not store.token_hashes():
        first_token = new_token()
        store.add_token(hash_token(first_token), "first start")
        log.warning("API token (shown once, stored hashed): %s", first_token)

    def authorize(ws: ServerConnection, hello: P.Hello | None) -> str | None:
        """Before anything is read (`hello` None): a certificate of a paired, unrevoked device;
        then: the hello names that device."""
        ssl_object = ws.transport.get_extra_info("ssl_object")
        if not isinstance(ssl_object, SSLObject):
            return "a TLS client certificate is required"
        serial, name = peer_serial_and_name(ssl_object)
        if not store.is_trusted(name, serial):
            return f"device {name!r} is not paired, or was revoked"
        if hello is None:
            return None
        if name != hello.name:
            return f"certificate is for {name!r}, not {hello.name!r}"
        store.seen(name, serial)
        return None

    def renew(name: str, csr: str) -> str:
        """A new certificate for a connected, authenticated device (its old one stays valid
        until the new one is seen)."""
        cert, serial = ca.issue_device_cert(csr.encode(), name, days=settings.device_cert_days)
        store.renewed(name, serial)
        log.info("renewed %s's certificate (serial %x)", name, serial)
        return cert.decode()

    coordinator = Coordinator(
        settings.host if settings.host != "0.0.0.0" else "0.0.0.0",
        settings.worker_port or _saved_worker_port(data),
        settings.request_timeout_s,
        ssl=server_ctx,
        authorize=authorize,
        renew=renew,
    )
    manager = ClusterManager(
        coordinator,
        strategy=settings.strategy,
        lossy_wire=settings.lossy_wire,
        queue_size=settings.queue_size,
        link_mbps=settings.link_mbps,
        standby=settings.standby,
    )
    coordinator.on_change = manager.changed
    return GatewayState(
        settings,
        store,
        ca,
        PairingCodes(),
        coordinator,
        manager,
        first_token=first_token,
        home=home_service,
        voice=VoiceAssistant(settings, manager, home_service),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state = make_state(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.home is not None:
            await state.home.start()  # timers, and Home Assistant's states when bridged
        await _start_coordinator(state)
        for model in dict.fromkeys([settings.generate_model, settings.embed_model]):
            await state.manager.load(model)
        if state.voice is not None:
            await state.voice.start()  # speech models; the intent classifier (cached)
        state.discovery = await _start_discovery(state)
        wyoming = state.extras["wyoming"] = await start_wyoming(state)  # when GALAXY_WYOMING
        watcher = asyncio.create_task(_watch_links(state))
        log.info("gateway ready: workers connect to %s", state.coordinator.url)
        try:
            yield
        finally:
            if wyoming is not None:
                await wyoming.stop()
            watcher.cancel()
            await state.manager.close()
            if state.discovery is not None:
                await state.discovery.stop()
            await state.coordinator.stop()
            if state.home is not None:
                await state.home.stop()
            state.store.close()

    app = FastAPI(
        title="Galaxy Home",
        version="0.1.0",
        description="An in-home assistant whose Transformer inference runs across the home's "
        "own devices (Galaxy hybrid model parallelism).",
        lifespan=lifespan,
    )
    app.state.gateway = state
    metrics = state.extras["metrics"] = GatewayMetrics(state.manager)  # GET /metrics
    state.store.on_request.append(metrics.observe_request)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    for r in (
        health.router,
        devices.router,
        pairing.router,
        cluster.router,
        inference.router,
        home.router,
        assist.router,
        stream.router,
        openai.router,
        events.router,
        tokens.router,
    ):
        app.include_router(r, prefix="/v1")
    app.include_router(metrics_router)  # GET /metrics (Prometheus), outside /v1
    app.include_router(dashboard.router)  # the web dashboard at / (assistant/web)

    errors.install(app)

    return app


def _wildcard(host: str) -> list[str]:
    """Listening on every address (0.0.0.0, as in a container with host networking), the
    gateway is reached by workers on this machine's own IPv4 addresses: its certificate names
    them all (as they are at start-up)."""
    if host != "0.0.0.0":
        return []
    import psutil

    nics = psutil.net_if_addrs().values()
    return [a.address for addrs in nics for a in addrs if a.family == socket.AF_INET]


async def _watch_links(state: GatewayState) -> None:
    """Re-measure the data plane every `link_check_s`, and at once when a request's ring ran
    much slower than the plan's best (cluster/linkwatch.py); a link that changed makes the
    plans stale."""
    suspect = state.manager.drift.suspect
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(suspect.wait(), state.settings.link_check_s)
        suspect.clear()
        try:
            await recheck_links(state.manager)
        except GalaxyError as exc:
            log.warning("link check failed: %s", exc)


async def _start_discovery(state: GatewayState) -> object | None:
    try:
        from assistant.discovery.mdns import GatewayDiscovery

        disc = GatewayDiscovery(
            name=state.settings.home_name,
            api_port=state.settings.port,
            worker_port=state.coordinator.port,
            interfaces=state.settings.mdns_interfaces,
        )
        await disc.start()
        return disc
    except Exception as exc:  # discovery is a convenience: the gateway works without it
        log.warning("mDNS discovery is off: %s", exc)
        return None


def _saved_worker_port(data: Path) -> int:
    """The worker port of the previous start (kept when GALAXY_WORKER_PORT is 0), or 0."""
    try:
        return int((data / WORKER_PORT_FILE).read_text())
    except (OSError, ValueError):
        return 0


async def _start_coordinator(state: GatewayState) -> None:
    """Listen for workers. With GALAXY_WORKER_PORT 0, the port taken on the first start is kept
    in the data dir and taken again on every restart: paired workers reconnect to the address
    they learned at pairing, so they come back by themselves without any configuration. Should
    another program hold that port now, any free port is taken (and kept): workers then find
    the gateway again by mDNS."""
    coordinator, settings = state.coordinator, state.settings
    try:
        await coordinator.start()
    except OSError as exc:
        if settings.worker_port or not coordinator.port:
            raise
        log.warning(
            "worker port %d of the last start is taken (%s): listening on another; paired "
            "workers find it by mDNS",
            coordinator.port,
            exc,
        )
        coordinator.port = 0
        await coordinator.start()
    if not settings.worker_port:
        data = settings.resolved_data_dir()
        if _saved_worker_port(data) != coordinator.port:
            (data / WORKER_PORT_FILE).write_text(f"{coordinator.port}\n")
