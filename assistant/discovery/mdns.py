"""The gateway's mDNS presence: announce ``GATEWAY_TYPE`` and keep a list of ``WORKER_TYPE``s.

Contract:
- ``GatewayDiscovery(name=..., api_port=..., worker_port=...)`` announces an instance named after
  the home (sanitised, renamed "name-2" ... on a conflict) with SRV port ``api_port`` and a TXT
  record of allow-listed, non-secret keys only (``GATEWAY_PROPERTY_KEYS``: version, proto, home,
  api_port, worker_port, tls). Other keys raise ValueError.
- ``interfaces``: IP addresses to bind, loopback only by default; ``["all"]`` only when the
  operator asks for it (see ``edge_worker.service.dnssd``).
- ``workers()`` is a snapshot of the workers currently announced: a worker appears once its
  records resolve (about 1.2 s after its ``start()`` began, measured on loopback), leaves as soon
  as its goodbye arrives (by the time its ``stop()`` returns), or when its records expire
  (``RECORD_TTL``) if it vanished without one.
- Runs on the caller's asyncio loop (the FastAPI lifespan). ``start()`` takes about 1 s (name
  probing); ``stop()`` is idempotent and takes about 0.25 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edge_worker.service.dnssd import (
    GATEWAY_PROPERTY_KEYS,
    GATEWAY_TYPE,
    LOOPBACK,
    WORKER_TYPE,
    ServiceAdvert,
    checked_properties,
    close_quietly,
    decoded_properties,
    package_version,
    preferred_host,
    short_name,
    start_zeroconf,
    zeroconf_interfaces,
)
from edge_worker.service.protocol import VERSION as PROTOCOL_VERSION

logger = logging.getLogger(__name__)

_RESOLVE_MS = 3000


@dataclass(frozen=True)
class SeenWorker:
    """A worker announcing itself on the network. Unverified until paired."""

    name: str  # DNS-SD instance name, unique on the network, e.g. "kitchen-pi"
    host: str  # IP address
    port: int  # the worker's SRV port
    properties: dict[str, str]  # its TXT record as received
    last_seen: float  # time.time() when its records last resolved


class GatewayDiscovery:
    """Announce this gateway and track the workers announcing themselves."""

    def __init__(
        self,
        *,
        name: str,
        api_port: int,
        worker_port: int,
        interfaces: Sequence[str] = LOOPBACK,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        zeroconf_interfaces(interfaces)  # validate now, not at start()
        if not 0 < worker_port < 65536:
            raise ValueError(f"worker_port {worker_port} is outside 1-65535")
        props = {
            "version": package_version(),
            "proto": str(PROTOCOL_VERSION),
            "home": name[:63],
            "api_port": str(api_port),
            "worker_port": str(worker_port),
        }
        props |= checked_properties(
            properties, GATEWAY_PROPERTY_KEYS, reserved=frozenset({"api_port", "worker_port"})
        )
        self._interfaces = list(interfaces)
        self._advert = ServiceAdvert(GATEWAY_TYPE, name, api_port, props, self._interfaces)
        self._aiozc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._workers: dict[str, SeenWorker] = {}
        self._resolving: dict[str, asyncio.Task[None]] = {}

    @property
    def service_name(self) -> str:
        """Fully qualified instance name; final (after any conflict rename) once started."""
        return self._advert.service_name

    @property
    def zeroconf(self) -> AsyncZeroconf | None:
        """The running AsyncZeroconf, for diagnostics and tests; None when stopped."""
        return self._aiozc

    async def start(self) -> None:
        """Bind, start browsing for workers, then probe the name and announce (about 1 s).

        No-op if already started.
        """
        if self._aiozc is not None:
            return
        aiozc = await start_zeroconf(self._interfaces)
        self._aiozc = aiozc
        try:
            self._browser = AsyncServiceBrowser(
                aiozc.zeroconf, [WORKER_TYPE], handlers=[self._on_change]
            )
            await self._advert.register(aiozc)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop browsing, send goodbyes, close. Idempotent; about 0.25 s."""
        aiozc, self._aiozc = self._aiozc, None
        browser, self._browser = self._browser, None
        tasks = list(self._resolving.values())
        self._resolving.clear()
        self._workers.clear()
        for task in tasks:
            task.cancel()
        if browser is not None:
            await browser.async_cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if aiozc is not None:
            self._advert.cancel_announcements()
            await close_quietly(aiozc)

    def workers(self) -> list[SeenWorker]:
        """The workers present now, sorted by name."""
        return sorted(self._workers.values(), key=lambda w: w.name)

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        # Called on the event loop by the browser; must not block.
        if state_change is ServiceStateChange.Removed:
            task = self._resolving.pop(name, None)
            if task is not None:
                task.cancel()
            if self._workers.pop(name, None) is not None:
                logger.info("mDNS: worker %s left", name)
            return
        if self._aiozc is None:
            return
        previous = self._resolving.pop(name, None)
        if previous is not None:  # an update overtakes a resolve still in flight
            previous.cancel()
        task = asyncio.get_running_loop().create_task(self._resolve(self._aiozc, name))
        self._resolving[name] = task
        task.add_done_callback(lambda t: self._forget(name, t))

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        if self._resolving.get(name) is task:
            del self._resolving[name]

    async def _resolve(self, aiozc: AsyncZeroconf, name: str) -> None:
        info = AsyncServiceInfo(WORKER_TYPE, name)
        if not await info.async_request(aiozc.zeroconf, _RESOLVE_MS):
            logger.warning("mDNS: worker %s did not resolve within %d ms", name, _RESOLVE_MS)
            return
        host = preferred_host(info)
        if host is None or info.port is None:
            logger.warning("mDNS: ignoring worker %s: record has no address or port", name)
            return
        seen = SeenWorker(
            name=short_name(name, WORKER_TYPE),
            host=host,
            port=info.port,
            properties=decoded_properties(info),
            last_seen=time.time(),
        )
        if name not in self._workers:
            logger.info("mDNS: worker %s at %s:%s", seen.name, host, seen.port)
        self._workers[name] = seen
