"""mDNS / DNS-SD discovery, worker side: find the gateway, announce this worker.

Contract (records, interfaces and TTLs as in dnssd.py):
- ``find_gateway`` browses for ``GATEWAY_TYPE`` and returns the first gateway that resolves, on
  ``LOOPBACK`` unless told otherwise; a gateway shows up about 1.2 s after it starts announcing.
  Unverified: pairing decides whether to trust it.
- ``browse_gateways`` lists every gateway that resolves within a window: a paired worker whose
  gateway stopped answering at its saved address looks for it there (the TLS handshake with the
  home CA decides which one is its own).
- ``WorkerAdvert`` announces this worker as ``WORKER_TYPE`` with allow-listed TXT keys only.
- Everything runs on the caller's asyncio loop; ``stop()`` is idempotent and takes about 0.25 s
  (three goodbye packets, 125 ms apart).

The gateway side (advertise the gateway, list workers) is ``assistant.discovery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass

from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edge_worker.service.dnssd import (
    GATEWAY_TYPE,
    LOOPBACK,
    WORKER_PROPERTY_KEYS,
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

__all__ = ["LOOPBACK", "FoundGateway", "WorkerAdvert", "browse_gateways", "find_gateway"]

logger = logging.getLogger(__name__)

_RESOLVE_MS = 3000


@dataclass(frozen=True)
class FoundGateway:
    """A gateway seen on the network. Unverified: pairing decides whether to trust it."""

    name: str  # DNS-SD instance name, e.g. "Galaxy Home"
    host: str  # IP address to connect to
    api_port: int  # HTTP API (the SRV port)
    worker_port: int  # control websocket for workers (TXT "worker_port")
    properties: dict[str, str]  # the TXT record as received


def _gateway_from_info(info: AsyncServiceInfo) -> FoundGateway | None:
    props = decoded_properties(info)
    host = preferred_host(info)
    try:
        worker_port = int(props.get("worker_port", ""))
    except ValueError:
        worker_port = 0
    if host is None or info.port is None or not 0 < worker_port < 65536:
        logger.warning(
            "mDNS: ignoring gateway record %s: no address, port or worker_port", info.name
        )
        return None
    return FoundGateway(
        name=short_name(info.name, GATEWAY_TYPE),
        host=host,
        api_port=info.port,
        worker_port=worker_port,
        properties=props,
    )


async def find_gateway(
    timeout: float = 5.0, interfaces: Sequence[str] = LOOPBACK, *, home: str | None = None
) -> FoundGateway:
    """Browse for ``GATEWAY_TYPE`` and return the first gateway that resolves.

    ``home``, if given, skips gateways whose TXT "home" differs (a neighbour's gateway on a shared
    network). ``timeout`` (seconds) covers everything; raises TimeoutError, saying what to check,
    when no usable gateway answered in time. A gateway normally shows up about 1.2 s after it
    starts announcing, or at once if it is already running.
    """
    async with contextlib.aclosing(_gateways(timeout, interfaces, home)) as found:
        async for gateway in found:
            return gateway
    which = f"for home {home!r} " if home is not None else ""
    raise TimeoutError(
        f"no Galaxy gateway ({GATEWAY_TYPE}) {which}answered within {timeout:.1f} s on "
        f"interfaces {list(interfaces)}; start `galaxy gateway` (or `galaxy demo`), make "
        "sure it announces on an interface this device can reach (its interface setting), "
        "that UDP port 5353 multicast is not blocked, or pass --gateway URL"
    )


async def browse_gateways(
    timeout: float, interfaces: Sequence[str] = LOOPBACK
) -> list[FoundGateway]:
    """Every gateway that resolves within ``timeout`` seconds (the whole window is used), each
    address once; an empty list when none answered. Unverified: a paired worker accepts one
    only through the TLS handshake with its home CA."""
    seen: dict[tuple[str, int], FoundGateway] = {}
    async with contextlib.aclosing(_gateways(timeout, interfaces, None)) as found:
        async for gateway in found:
            seen.setdefault((gateway.host, gateway.worker_port), gateway)
    return list(seen.values())


async def _gateways(
    timeout: float, interfaces: Sequence[str], home: str | None
) -> AsyncGenerator[FoundGateway, None]:
    """The gateways that resolve within ``timeout`` seconds, as they do (repeats possible)."""
    names: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.put_nowait(name)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    aiozc = await start_zeroconf(interfaces)
    browser = AsyncServiceBrowser(aiozc.zeroconf, [GATEWAY_TYPE], handlers=[on_change])
    try:
        while (left := deadline - loop.time()) > 0:
            try:
                name = await asyncio.wait_for(names.get(), left)
            except TimeoutError:
                return
            info = AsyncServiceInfo(GATEWAY_TYPE, name)
            wait_ms = max(1.0, min(_RESOLVE_MS, (deadline - loop.time()) * 1e3))
            if not await info.async_request(aiozc.zeroconf, wait_ms):
                logger.warning("mDNS: gateway %s did not resolve", name)
                continue
            found = _gateway_from_info(info)
            if found is not None and home is not None and found.properties.get("home") != home:
                logger.info("mDNS: skipping gateway %s of another home", name)
                continue
            if found is not None:
                logger.info("mDNS: found gateway %s at %s:%s", name, found.host, found.api_port)
                yield found
    finally:
        await browser.async_cancel()
        await close_quietly(aiozc)


class WorkerAdvert:
    """Announce this worker as ``WORKER_TYPE`` so the gateway can list devices not yet paired.

    ``name`` is the device name (sanitised into the instance name; the original goes in TXT
    "name"); ``port`` is the worker's listening port. ``properties`` may only use
    ``WORKER_PROPERTY_KEYS``.
    """

    def __init__(
        self,
        name: str,
        port: int,
        interfaces: Sequence[str] = LOOPBACK,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        zeroconf_interfaces(interfaces)  # validate now, not at start()
        props = {"version": package_version(), "proto": str(PROTOCOL_VERSION), "name": name[:63]}
        props |= checked_properties(properties, WORKER_PROPERTY_KEYS)
        self._interfaces = list(interfaces)
        self._advert = ServiceAdvert(WORKER_TYPE, name, port, props, self._interfaces)
        self._aiozc: AsyncZeroconf | None = None

    @property
    def service_name(self) -> str:
        """Fully qualified instance name; final (after any conflict rename) once started."""
        return self._advert.service_name

    @property
    def zeroconf(self) -> AsyncZeroconf | None:
        """The running AsyncZeroconf, for diagnostics and tests; None when stopped."""
        return self._aiozc

    async def start(self) -> None:
        """Bind, probe the name (about 1 s) and announce. No-op if already started."""
        if self._aiozc is not None:
            return
        self._aiozc = aiozc = await start_zeroconf(self._interfaces)
        try:
            await self._advert.register(aiozc)
        except BaseException:  # includes a stop() that closed zeroconf while we probed
            await self.stop()
            raise

    async def stop(self) -> None:
        """Send goodbyes and close. Idempotent; about 0.25 s."""
        aiozc, self._aiozc = self._aiozc, None
        if aiozc is None:
            return
        self._advert.cancel_announcements()
        await close_quietly(aiozc)
