"""The link probe sees an emulated slow link (needs root for namespaces and tc)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from assistant.cluster.remote import RemoteCluster
from galaxy_bench.emulation import DeviceSpec, Home
from tests.bench.homes import launch_in_home

needs_root = pytest.mark.skipif(
    Home.available()["netns"] is not None, reason=f"{Home.available()['netns']}"
)


@needs_root
@pytest.mark.slow
def test_probe_finds_the_100_mbit_device_among_1000_mbit_ones() -> None:
    devices = [DeviceSpec("a", 1.0, 1000), DeviceSpec("b", 1.0, 1000), DeviceSpec("c", 1.0, 100)]
    with Home(devices, links="netns", cpu="none") as home, tempfile.TemporaryDirectory() as tmp:
        cluster = RemoteCluster.start(home.coordinator_host)
        procs = launch_in_home(home, cluster, Path(tmp))
        try:
            cluster.wait_for_workers(3)
            links = cluster.probe_links([d.name for d in devices], timeout=120)
        finally:
            cluster.close()
            for p in procs:
                p.kill()

    assert 50 < links["c"][0] < 110
    assert links["a"][0] > 400 and links["b"][0] > 400
