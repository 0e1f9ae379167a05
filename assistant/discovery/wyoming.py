"""The Wyoming server's mDNS record, `_wyoming._tcp.local.`: how Home Assistant finds voice
services (its Wyoming integration offers each one it sees, as it does its own voice add-ons).

Contract:
- ``WyomingAdvert(name=..., port=...)`` announces an instance named after the home (sanitised,
  renamed "name-2" ... on a conflict) with SRV port ``port`` and an empty TXT record, as
  rhasspy's own servers do: Home Assistant asks the server itself (``describe``) what it offers.
- ``interfaces``: the IP addresses to bind and announce, loopback only by default, ``["all"]``
  only when the operator asks for it (``edge_worker.service.dnssd``, as the gateway's own
  record).
- Runs on the caller's asyncio loop. ``start()`` takes about 1 s (name probing); ``stop()`` is
  idempotent, sends goodbyes and takes about 0.25 s.
"""

from __future__ import annotations

from collections.abc import Sequence

from zeroconf.asyncio import AsyncZeroconf

from edge_worker.service.dnssd import (
    LOOPBACK,
    ServiceAdvert,
    close_quietly,
    start_zeroconf,
    zeroconf_interfaces,
)

WYOMING_TYPE = "_wyoming._tcp.local."


class WyomingAdvert:
    def __init__(self, *, name: str, port: int, interfaces: Sequence[str] = LOOPBACK) -> None:
        zeroconf_interfaces(interfaces)  # validate now, not at start()
        self._interfaces = list(interfaces)
        self._advert = ServiceAdvert(WYOMING_TYPE, name, port, {}, self._interfaces)
        self._aiozc: AsyncZeroconf | None = None

    @property
    def service_name(self) -> str:
        """Fully qualified instance name; final (after any conflict rename) once started."""
        return self._advert.service_name

    async def start(self) -> None:
        """Bind, probe the name and announce (about 1 s). No-op if already started."""
        if self._aiozc is not None:
            return
        aiozc = await start_zeroconf(self._interfaces)
        self._aiozc = aiozc
        try:
            await self._advert.register(aiozc)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Send goodbyes and close. Idempotent."""
        aiozc, self._aiozc = self._aiozc, None
        if aiozc is not None:
            self._advert.cancel_announcements()
            await close_quietly(aiozc)
