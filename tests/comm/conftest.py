"""Fixtures of the ring tests: `ring` is a connected TCP ring on 127.0.0.1 of
`request.param` ranks (use `@pytest.mark.parametrize("ring", [n], indirect=True)`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_worker.comm.tcp import TcpRingCommunicator


@pytest.fixture
def ring(request: pytest.FixtureRequest) -> Iterator[list[TcpRingCommunicator]]:
    comms = TcpRingCommunicator.loopback_ring(request.param, timeout=10)
    yield comms
    for c in comms:
        c.close()
