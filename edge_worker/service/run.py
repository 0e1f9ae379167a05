"""`galaxy worker`: pair if needed, announce the device, serve the gateway, reconnect.

http://.. the gateway's HTTP API (or none: found by mDNS): pair once with a code or the
          owner's approval, then serve over wss:// with mutual TLS, ring included.
ws://...  a development coordinator (`galaxy verify --transport tcp`, `galaxy bench`):
          no pairing, no TLS; sessions are protected by the plan's token only. Refused
          unless the worker runs in development mode (`galaxy worker --development`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import websockets

from edge_worker.errors import GalaxyError
from edge_worker.service.credentials import Credentials
from edge_worker.service.discovery import LOOPBACK, WorkerAdvert, find_gateway
from edge_worker.service.pairing import pair
from edge_worker.service.worker import Worker

log = logging.getLogger(__name__)


class Refused(GalaxyError):
    """The gateway refused this device (not paired, revoked, or wrong certificate)."""


async def run_worker(
    worker: Worker,
    gateway: str | None,
    data_dir: Path,
    pairing_code: str | None = None,
    interfaces: Sequence[str] = LOOPBACK,
    ca_fingerprint: str | None = None,
) -> None:
    if gateway is not None and gateway.startswith(("ws://", "wss://")):
        if not worker.development:
            raise GalaxyError(
                f"{gateway} is a coordinator without pairing or client certificates, a "
                "development mode for galaxy verify and galaxy bench: pass --development to "
                "allow it, or give the gateway's http:// API URL to pair with it"
            )
        await worker.serve(gateway)
        return
    creds = Credentials.load(data_dir / "credentials")
    if creds is None or creds.name != worker.name:
        if gateway is None:
            found = await find_gateway(interfaces=interfaces)
            gateway = f"http://{found.host}:{found.api_port}"
            log.info("found the gateway %r at %s", found.name, gateway)
        creds = await asyncio.to_thread(
            pair,
            gateway,
            data_dir / "credentials",
            worker.name,
            pairing_code,
            ca_fingerprint=ca_fingerprint,
        )
    advert = WorkerAdvert(worker.name, worker.data_port, interfaces)
    await advert.start()
    try:
        await _serve_forever(worker, creds)
    finally:
        await advert.stop()


async def _serve_forever(worker: Worker, creds: Credentials) -> None:
    """Serve, and reconnect with backoff when the gateway restarts or the network drops."""
    backoff = 1.0
    while True:
        try:
            if await worker.serve(creds.gateway, creds):
                return  # the gateway asked us to stop
            backoff = 1.0
        except websockets.ConnectionClosedError as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1008:
                raise Refused(f"the gateway refused {worker.name}: {exc.rcvd.reason}") from None
            log.warning("link to the gateway lost (%s); reconnecting in %.0f s", exc, backoff)
        except OSError as exc:
            log.warning("cannot reach the gateway (%s); retrying in %.0f s", exc, backoff)
        await asyncio.sleep(backoff)
        backoff = min(30.0, backoff * 2)
