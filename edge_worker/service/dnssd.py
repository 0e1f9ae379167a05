"""DNS-SD records and zeroconf plumbing shared by both ends: the worker (discovery.py) and the
gateway (``assistant.discovery``) build and read records the same way.

Contract:
- Service types: the gateway is ``GATEWAY_TYPE`` (SRV port = HTTP API port), workers are
  ``WORKER_TYPE`` (SRV port = the worker's own port).
- Discovery is not trust (DESIGN.md section 4): a record can be spoofed, so it only tells where to
  knock. TXT records carry allow-listed, non-secret keys only (``GATEWAY_PROPERTY_KEYS``,
  ``WORKER_PROPERTY_KEYS``); anything else is refused with ``ValueError`` before it is announced
  (``checked_properties``).
- ``interfaces`` is a sequence of IP addresses to bind to, loopback only by default
  (``LOOPBACK``). The single value ``"all"`` binds every interface and must only come from an
  explicit operator setting. Tests and dev/demo runs stay on ``127.0.0.1``.
- With loopback-only interfaces on Linux, the wildcard socket that zeroconf listens on
  (0.0.0.0:5353) is also pinned to the loopback device (``start_zeroconf``), so a unicast query
  arriving on a real interface can neither reach it nor be answered through it.
- Records live ``RECORD_TTL`` seconds: a device that vanishes without a goodbye drops out of a
  browser's list within about that time; closing zeroconf sends goodbye packets (about 0.25 s).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import secrets
import socket
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata

from zeroconf import InterfaceChoice, InterfacesType, IPVersion, get_all_addresses
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

logger = logging.getLogger(__name__)

GATEWAY_TYPE = "_galaxy._tcp.local."
WORKER_TYPE = "_galaxy-worker._tcp.local."

LOOPBACK: tuple[str, ...] = ("127.0.0.1",)
ALL_INTERFACES = "all"
RECORD_TTL = 120  # seconds, for every record (SRV, TXT, PTR, A)

GATEWAY_PROPERTY_KEYS = frozenset({"version", "proto", "home", "api_port", "worker_port", "tls"})
WORKER_PROPERTY_KEYS = frozenset({"version", "proto", "name"})

_INSTANCE_MAX_BYTES = 50  # DNS-SD allows 63; leave room for zeroconf's "-N" on a conflict
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)  # Linux value


def package_version() -> str:
    """The installed galaxy-home version, or "0" when running from an uninstalled tree."""
    try:
        return metadata.version("galaxy-home")
    except metadata.PackageNotFoundError:
        return "0"


def instance_name(name: str) -> str:
    """A valid, readable DNS-SD instance name for a device or home name.

    Keeps letters, digits, spaces, "-" and "_"; everything else (dots, control characters,
    symbols) becomes "-". At most ``_INSTANCE_MAX_BYTES`` UTF-8 bytes; "galaxy" if nothing is left.
    """
    text = re.sub(r"\s+", " ", name)
    text = re.sub(r"[^\w \-]", "-", text)
    text = re.sub(r"-{2,}", "-", text).strip(" -_")
    encoded = text.encode()[:_INSTANCE_MAX_BYTES]
    text = encoded.decode(errors="ignore").strip(" -_")
    return text or "galaxy"


def host_label(name: str) -> str:
    """A unique mDNS host name, ``<label>-<6 hex>.local.``: no two devices claim one A record."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:40].strip("-") or "galaxy"
    return f"{label}-{secrets.token_hex(3)}.local."


def zeroconf_interfaces(interfaces: Sequence[str]) -> InterfacesType:
    """Translate the project's interface setting into zeroconf's choice.

    ``["all"]`` means every interface; otherwise each entry must be an IP address.
    Raises ValueError for an empty list, a bare string, or an entry that is not an address.
    """
    if isinstance(interfaces, str):
        raise ValueError(f"interfaces must be a list of addresses, not the string {interfaces!r}")
    items = [i.strip() for i in interfaces]
    if items == [ALL_INTERFACES]:
        return InterfaceChoice.All
    if not items:
        raise ValueError('interfaces is empty: give IP addresses, e.g. ["127.0.0.1"], or ["all"]')
    for item in items:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(
                f"interface {item!r} is not an IP address; use addresses such as "
                '"127.0.0.1" or "192.168.1.20", or ["all"] to announce on every interface'
            ) from None
    return items


def is_loopback_only(interfaces: Sequence[str]) -> bool:
    """True when every configured interface is a loopback address (the dev/test default)."""
    if list(interfaces) == [ALL_INTERFACES]:
        return False
    return all(ipaddress.ip_address(i.strip()).is_loopback for i in interfaces)


def advertised_addresses(interfaces: Sequence[str]) -> list[str]:
    """The addresses to put in our A/AAAA records: the configured ones, or for "all" every
    non-loopback IPv4 address of this machine (loopback only if there is nothing else)."""
    if list(interfaces) != [ALL_INTERFACES]:
        return [i.strip() for i in interfaces]
    found = [a for a in get_all_addresses() if not ipaddress.ip_address(a).is_loopback]
    return found or list(LOOPBACK)


def _confine_to_loopback(aiozc: AsyncZeroconf) -> None:
    """Pin zeroconf's wildcard listen socket to the loopback device (Linux).

    zeroconf sends only through per-interface sockets bound to the configured addresses, but it
    listens on 0.0.0.0:5353 and answers a unicast query through the socket it arrived on. Bound
    to "lo", that socket no longer receives anything from a real interface.
    """
    if not sys.platform.startswith("linux"):
        logger.info("mDNS: loopback pinning of the listen socket is Linux-only; skipped")
        return
    device = "lo"  # the Linux kernel's name for the loopback device
    for reader in aiozc.zeroconf.engine.readers:
        address = reader.sock.getsockname()[0]
        if ipaddress.ip_address(address).is_loopback:
            continue
        try:
            reader.sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, device.encode())
        except OSError as exc:
            logger.warning(
                "mDNS: could not pin the listen socket %s to %s (%s); unicast queries arriving "
                "on other interfaces may still be answered",
                reader.sock.getsockname(),
                device,
                exc,
            )


async def start_zeroconf(interfaces: Sequence[str]) -> AsyncZeroconf:
    """An AsyncZeroconf bound to ``interfaces`` on the running loop, started and, for loopback-only
    settings, confined to the loopback device. The caller closes it."""
    choice = zeroconf_interfaces(interfaces)
    aiozc = AsyncZeroconf(interfaces=choice)
    try:
        await aiozc.zeroconf.async_wait_for_start()
        if is_loopback_only(interfaces):
            _confine_to_loopback(aiozc)
    except BaseException:
        await aiozc.async_close()
        raise
    return aiozc


async def close_quietly(aiozc: AsyncZeroconf) -> None:
    """Close, logging rather than raising: shutdown paths must not fail on a dying socket."""
    try:
        await aiozc.async_close()
    except Exception:
        logger.warning("mDNS: error while closing zeroconf", exc_info=True)


def checked_properties(
    given: Mapping[str, str] | None, allowed: frozenset[str], reserved: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Copy ``given`` after checking every key is allow-listed and not set by the caller's class."""
    props = dict(given or {})
    unknown = set(props) - allowed
    if unknown:
        raise ValueError(
            f"mDNS records are public: keys {sorted(unknown)} are not allowed "
            f"(allowed: {sorted(allowed)}); send anything else over the paired, encrypted link"
        )
    clash = set(props) & reserved
    if clash:
        raise ValueError(f"keys {sorted(clash)} are set from the constructor arguments")
    return {k: str(v) for k, v in props.items()}


def decoded_properties(info: AsyncServiceInfo) -> dict[str, str]:
    """TXT record as str -> str (keys without a value map to "")."""
    return {k: v or "" for k, v in info.decoded_properties.items()}


def preferred_host(info: AsyncServiceInfo) -> str | None:
    """First IPv4 address of a resolved service, else first IPv6, else None."""
    v4 = info.parsed_addresses(IPVersion.V4Only)
    if v4:
        return v4[0]
    v6 = info.parsed_scoped_addresses(IPVersion.V6Only)
    return v6[0] if v6 else None


def short_name(service_name: str, service_type: str) -> str:
    """``"kitchen-pi._galaxy-worker._tcp.local."`` -> ``"kitchen-pi"``."""
    suffix = "." + service_type
    return service_name[: -len(suffix)] if service_name.endswith(suffix) else service_name


class ServiceAdvert:
    """One registered DNS-SD service on an AsyncZeroconf that the caller owns.

    ``register()`` probes for the name (about 1 s, RFC 6762 section 8) and renames on a conflict
    ("name-2", ...); ``service_name`` is the final, fully qualified name.
    """

    def __init__(
        self,
        service_type: str,
        name: str,
        port: int,
        properties: Mapping[str, str],
        interfaces: Sequence[str],
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is outside 1-65535")
        label = instance_name(name)
        self.info = AsyncServiceInfo(
            service_type,
            f"{label}.{service_type}",
            port=port,
            properties=dict(properties),
            server=host_label(label),
            host_ttl=RECORD_TTL,
            other_ttl=RECORD_TTL,
            parsed_addresses=advertised_addresses(interfaces),
        )
        self._announce: asyncio.Future[object] | None = None

    @property
    def service_name(self) -> str:
        return self.info.name

    async def register(self, aiozc: AsyncZeroconf) -> None:
        announce = await aiozc.async_register_service(self.info, allow_name_change=True)
        # The remaining announcements (about 0.5 s) go on in the background.
        self._announce = asyncio.ensure_future(announce)
        logger.info(
            "mDNS: announced %s port %s at %s",
            self.info.name,
            self.info.port,
            self.info.parsed_addresses(),
        )

    def cancel_announcements(self) -> None:
        if self._announce is not None and not self._announce.done():
            self._announce.cancel()
