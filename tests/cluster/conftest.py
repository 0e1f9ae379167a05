"""Fixtures that start real worker processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assistant.cluster.remote import RemoteCluster, local_workers


@pytest.fixture(scope="module")
def three_workers() -> Iterator[tuple[RemoteCluster, list[str]]]:
    with local_workers(3) as (cluster, names):
        yield cluster, names
