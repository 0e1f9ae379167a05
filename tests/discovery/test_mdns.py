"""mDNS discovery on 127.0.0.1 only: the gateway is found, workers come and go, no secrets, no
traffic on real interfaces. Every name is unique per test, so other gateways or workers on this
machine's loopback cannot be mistaken for ours."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from zeroconf import InterfaceChoice
from zeroconf.asyncio import AsyncZeroconf

from assistant.discovery import GatewayDiscovery, SeenWorker
from edge_worker.service.discovery import WorkerAdvert, find_gateway
from edge_worker.service.dnssd import (
    GATEWAY_PROPERTY_KEYS,
    WORKER_PROPERTY_KEYS,
    instance_name,
    zeroconf_interfaces,
)

# One event loop for the module's async tests, so that one gateway (about 1.2 s to start) serves
# them all.
module_loop = pytest.mark.asyncio(loop_scope="module")

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


HOME = unique("test home")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway() -> AsyncIterator[GatewayDiscovery]:
    discovery = GatewayDiscovery(
        name=HOME, api_port=18080, worker_port=18081, properties={"tls": "0"}
    )
    await discovery.start()
    yield discovery
    await discovery.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def worker_named(discovery: GatewayDiscovery, name: str) -> SeenWorker | None:
    return next((w for w in discovery.workers() if w.name == name), None)


@module_loop
async def test_advertised_gateway_is_found_with_its_ports_and_properties(
    gateway: GatewayDiscovery,
) -> None:
    found = await find_gateway(timeout=5.0, home=HOME)

    assert (found.name, found.host, found.api_port, found.worker_port) == (
        HOME,
        "127.0.0.1",
        18080,
        18081,
    )
    assert found.properties["home"] == HOME
    assert found.properties["tls"] == "0"


@module_loop
async def test_gateway_record_carries_only_allow_listed_keys(gateway: GatewayDiscovery) -> None:
    found = await find_gateway(timeout=5.0, home=HOME)

    assert set(found.properties) <= GATEWAY_PROPERTY_KEYS


@module_loop
async def test_worker_shows_up_then_leaves_after_its_stop(gateway: GatewayDiscovery) -> None:
    advert = WorkerAdvert(unique("kitchen.pi"), port=19090)
    name = advert.service_name.split(".")[0]
    await advert.start()
    try:
        assert await wait_for(lambda: worker_named(gateway, name) is not None)
        seen = worker_named(gateway, name)
        assert seen is not None
        assert (seen.host, seen.port) == ("127.0.0.1", 19090)
        assert set(seen.properties) <= WORKER_PROPERTY_KEYS
    finally:
        await advert.stop()

    assert await wait_for(lambda: worker_named(gateway, name) is None)


@module_loop
async def test_two_workers_with_one_name_get_distinct_instance_names(
    gateway: GatewayDiscovery,
) -> None:
    device = unique("desk-pc")
    first, second = WorkerAdvert(device, port=19091), WorkerAdvert(device, port=19092)
    await first.start()
    await second.start()
    try:
        names = {first.service_name, second.service_name}
        assert len(names) == 2
        assert await wait_for(
            lambda: (
                {w.port for w in gateway.workers() if w.name.startswith(device)} == {19091, 19092}
            )
        )
    finally:
        await asyncio.gather(first.stop(), second.stop())


@module_loop
async def test_find_gateway_times_out_quickly_when_none_is_advertised() -> None:
    started = time.monotonic()

    with pytest.raises(TimeoutError, match="no Galaxy gateway"):
        await find_gateway(timeout=0.5, home=unique("nobody's home"))

    assert time.monotonic() - started < 2.0


def test_secret_properties_are_refused_before_anything_is_announced() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        GatewayDiscovery(name="h", api_port=1, worker_port=2, properties={"token": "s3cret"})
    with pytest.raises(ValueError, match="not allowed"):
        WorkerAdvert("w", port=1, properties={"pairing_code": "123456"})


def test_ports_cannot_be_overridden_through_properties() -> None:
    with pytest.raises(ValueError, match="constructor"):
        GatewayDiscovery(name="h", api_port=1, worker_port=2, properties={"api_port": "9"})


@module_loop
async def test_stop_is_idempotent_and_safe_before_start() -> None:
    advert = WorkerAdvert(unique("w"), port=19093)
    await advert.stop()
    await advert.start()
    await advert.stop()
    await advert.stop()

    assert advert.zeroconf is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_BINDTODEVICE is Linux-only")
@module_loop
async def test_default_sockets_stay_on_loopback() -> None:
    advert = WorkerAdvert(unique("w"), port=19094)
    await advert.start()
    try:
        aiozc = advert.zeroconf
        assert isinstance(aiozc, AsyncZeroconf)
        engine = aiozc.zeroconf.engine
        senders = [t.sock for t in engine.senders]
        listeners = [t.sock for t in engine.readers if t.sock not in senders]

        assert senders and all(s.getsockname()[0] == "127.0.0.1" for s in senders)
        assert all(
            socket.inet_ntoa(s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4))
            == "127.0.0.1"
            for s in senders
        )
        assert listeners
        for s in listeners:
            device = s.getsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, 16).rstrip(b"\0")
            assert device.startswith(b"lo"), (s, device)
    finally:
        await advert.stop()


def test_all_interfaces_only_when_asked_for() -> None:
    assert zeroconf_interfaces(["127.0.0.1"]) == ["127.0.0.1"]
    assert zeroconf_interfaces(["all"]) is InterfaceChoice.All
    with pytest.raises(ValueError):
        zeroconf_interfaces([])
    with pytest.raises(ValueError):
        zeroconf_interfaces(["eth0"])
    with pytest.raises(ValueError):
        zeroconf_interfaces("127.0.0.1")  # a str is a Sequence[str]: refused at run time


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("kitchen-pi", "kitchen-pi"),
        ("Kitchen Pi.local", "Kitchen Pi-local"),
        ("  desk\tpc  ", "desk pc"),
        ("a/b\\c..d", "a-b-c-d"),
        ("...", "galaxy"),
        ("x" * 80, "x" * 50),
    ],
)
def test_device_names_become_valid_instance_names(given: str, expected: str) -> None:
    assert instance_name(given) == expected
