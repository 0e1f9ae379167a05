"""Links are measured over the data plane (the TCP ring), per device."""

from __future__ import annotations

from tests.cluster.test_workers import Workers


def test_every_device_gets_a_bandwidth_and_latency(three_workers: Workers) -> None:
    cluster, names = three_workers
    links = cluster.probe_links(names, nbytes=1 << 20, timeout=60)

    assert set(links) == set(names)
    for mbps, latency_ms in links.values():
        assert mbps > 10  # loopback: far faster than any home link
        assert 0 <= latency_ms < 50
