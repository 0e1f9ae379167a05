"""`galaxy worker`: pair if needed, announce the device, serve the gateway, reconnect.

http://.. the gateway's HTTP API (or none: found by mDNS): pair once with a code or the
          owner's approval, then serve over wss:// with mutual TLS, ring included.
ws://...  a development coordinator (`galaxy verify --transport tcp`, `galaxy bench`):
          no pairing, a plain control link; the ring uses mutual TLS if the data dir holds
          credentials (the bench issues them), else only the plan's token protects it.
          Refused unless the worker runs in development mode (`galaxy worker --development`).

A data host of "auto" (`galaxy worker --data-host auto`) becomes this device's address on the
route to the gateway once the gateway's address is known: the address its ring peers, on the
same home network, reach it on.

The worker's health (a container's health check reads it): `<data_dir>/status.json`, rewritten
atomically whenever the control link to the gateway goes up or down:
`{"worker": name, "link": "up" | "down", "gateway": wss URL | null, "pid": pid, "since": epoch s}`.
It says "down" from the start until the first link is up, pairing included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import websockets

from edge_worker.comm import waits
from edge_worker.errors import GalaxyError
from edge_worker.service.credentials import Credentials
from edge_worker.service.discovery import (
    LOOPBACK,
    FoundGateway,
    WorkerAdvert,
    browse_gateways,
    find_gateway,
)
from edge_worker.service.pairing import pair
from edge_worker.service.worker import Worker

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"
BACKOFF_CAP_S = 5.0  # longest wait between two attempts to reach the gateway


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
        _resolve_data_host(worker, gateway)
        waits.ballast_from_env(worker.compute_tid)  # the bench's --ballast (comm/waits.py)
        # Credentials in the data dir (`galaxy bench` issues them from a throwaway CA) make
        # the ring use mutual TLS, as the product's does; the control link stays plain.
        ring = Credentials.load(data_dir / "credentials")
        await worker.serve(gateway, ring if ring is not None and ring.name == worker.name else None)
        return
    worker.on_link = link_status(data_dir / STATUS_FILE, worker.name)
    worker.on_link(None)
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
    _resolve_data_host(worker, creds.gateway)
    advert = WorkerAdvert(worker.name, worker.data_port, interfaces)
    await advert.start()
    try:
        await _serve_forever(worker, creds, interfaces)
    finally:
        await advert.stop()


def _resolve_data_host(worker: Worker, gateway_url: str) -> None:
    if worker.data_host != "auto":
        return
    host = urllib.parse.urlsplit(gateway_url).hostname or "127.0.0.1"
    family, kind, _, _, address = socket.getaddrinfo(host, 9, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, kind) as probe:
        probe.connect(address[:2])  # UDP: picks the route, sends nothing
        worker.data_host = str(probe.getsockname()[0])
    log.info("data plane on %s:%d (the route to %s)", worker.data_host, worker.data_port, host)


def link_status(path: Path, name: str) -> Callable[[str | None], None]:
    """A `Worker.on_link` hook that records the control link's state in `path` (JSON)."""

    def record(url: str | None) -> None:
        link = "up" if url else "down"
        body = {
            "worker": name,
            "link": link,
            "gateway": url,
            "pid": os.getpid(),
            "since": time.time(),
        }
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(body))
            os.replace(tmp, path)
        except OSError as exc:  # health reporting must never stop the worker
            log.warning("cannot write the health status %s: %s", path, exc)

    return record


async def _serve_forever(
    worker: Worker, creds: Credentials, interfaces: Sequence[str] = LOOPBACK
) -> None:
    """Serve the gateway for good: reconnect whenever the link drops, and find the gateway
    again when it moved. Returns never; raises Refused when the gateway refuses this device.

    - A lost link, a gateway that cannot be reached and a gateway that stops cleanly (its
      Shutdown: a restart or an upgrade) are all waited out: the next attempt comes after a
      backoff of 1 s doubling to `BACKOFF_CAP_S`, each wait drawn from its upper half so a
      home's workers do not all call back at once; a link that came up resets it to 1 s. The
      cap is short because a home has a handful of workers (their attempts cost the gateway
      nothing) and a restarted gateway should have its workers back within seconds.
    - Each wait is spent browsing mDNS (`browse_gateways`): a gateway found at another address
      than the saved one (restarted on another port, or moved) is tried at once, and the
      saved one right after it (mDNS also finds other homes' gateways). The TLS
      handshake decides: it accepts only a certificate from the home CA pinned at pairing, for
      the address dialled. The first link up at a new address saves it (`Credentials.moved`);
      nothing is paired again.
    """
    backoff = 1.0
    record = worker.on_link

    def on_link(url: str | None) -> None:
        nonlocal creds, backoff
        if url is not None:
            backoff = 1.0
            if url != creds.gateway:
                creds = creds.moved(url)
        record(url)

    worker.on_link = on_link
    # Addresses to try before waiting again: those mDNS gave, then the saved one (another
    # home's gateway on the network is found too, and must not keep the saved one untried).
    found: list[str] = []
    while True:
        url = found.pop(0) if found else creds.gateway
        try:
            # At a new address, the credentials carry it already (a renewal stores it too).
            stopped = await worker.serve(url, replace(creds, gateway=url))
            log.warning(
                "the gateway %s; reconnecting",
                "is shutting down" if stopped else "closed the link",
            )
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1008:
                raise Refused(f"the gateway refused {worker.name}: {exc.rcvd.reason}") from None
            log.warning("link to the gateway lost (%s); reconnecting", exc)
        except ssl.SSLCertVerificationError as exc:
            log.warning("%s is not this home's gateway (%s)", url, exc.verify_message)
        except (OSError, websockets.InvalidHandshake) as exc:  # TimeoutError is an OSError
            log.warning("cannot reach the gateway at %s (%s)", url, exc)
        if found:
            continue
        wait = backoff * random.uniform(0.5, 1.0)
        backoff = min(BACKOFF_CAP_S, backoff * 2)
        others = await _look_up(creds.gateway, interfaces, wait)
        found = [*others, creds.gateway] if others else []


async def _look_up(saved: str, interfaces: Sequence[str], wait: float) -> list[str]:
    """Browse mDNS for `wait` seconds (at least that long in any case): the worker URLs of the
    gateways found elsewhere than `saved`."""
    started = time.monotonic()
    try:
        gateways = await browse_gateways(wait, interfaces)
    except Exception as exc:  # mDNS is a convenience: the saved address is retried regardless
        log.info("cannot browse mDNS for the gateway (%s)", exc)
        gateways = []
    await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))
    urls = [_worker_url(g) for g in gateways if g.properties.get("tls") != "0"]
    return [u for u in dict.fromkeys(urls) if u != saved]


def _worker_url(found: FoundGateway) -> str:
    host = f"[{found.host}]" if ":" in found.host else found.host
    return f"wss://{host}:{found.worker_port}/worker"
