"""Home Assistant finds the gateway's Wyoming server by its `_wyoming._tcp.local.` record:
here a zeroconf browser bound to 127.0.0.1 only, as every mDNS test of the project is."""

from __future__ import annotations

import asyncio

from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from assistant.discovery.wyoming import WYOMING_TYPE
from assistant.launcher import RunningGateway
from tests.wyoming.conftest import HOME_NAME, wyoming_of


async def test_the_wyoming_record_is_found_on_loopback_with_the_servers_port(
    gateway: RunningGateway,
) -> None:
    found: asyncio.Queue[str] = asyncio.Queue()

    def seen(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added and name.startswith(HOME_NAME):
            found.put_nowait(name)

    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"])
    browser = AsyncServiceBrowser(aiozc.zeroconf, [WYOMING_TYPE], handlers=[seen])
    try:
        name = await asyncio.wait_for(found.get(), 10)
        info = AsyncServiceInfo(WYOMING_TYPE, name)
        resolved = await info.async_request(aiozc.zeroconf, 3000)
    finally:
        await browser.async_cancel()
        await aiozc.async_close()

    assert resolved
    assert info.port == wyoming_of(gateway).port
    assert info.parsed_addresses() == ["127.0.0.1"]
