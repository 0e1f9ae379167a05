"""Streaming collectives on the TCP ring (tile-based overlap): chunks are usable as each lands,
partials travel as each is fed, and the results equal the in-process group's."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from edge_worker.comm.base import Communicator, reduce_order, ring_order
from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.engine.overlap import (
    Project,
    gather_project_reduce,
    gather_then_project,
    project_then_reduce_scatter,
)
from edge_worker.errors import WorkerLost
from tests.comm.ranks import on_local, on_ranks, outcomes

SIZES = [5, 20, 12, 9]


@pytest.fixture
def ring(request: pytest.FixtureRequest) -> Iterator[list[TcpRingCommunicator]]:
    comms = TcpRingCommunicator.loopback_ring(request.param, timeout=3)
    yield comms
    for c in comms:
        c.close()


def weight(rank: int) -> torch.Tensor:
    return torch.randn(8, 6, generator=torch.Generator().manual_seed(100 + rank))


@pytest.mark.parametrize("ring", [2, 3, 4], indirect=True)
def test_overlapped_regions_equal_the_local_groups(ring: list[TcpRingCommunicator]) -> None:
    sizes = SIZES[: len(ring)]

    def regions(c: Communicator) -> Any:
        x = torch.randn(1, sizes[c.rank], 8, generator=torch.Generator().manual_seed(c.rank))
        w = weight(c.rank)
        t, f32 = sum(sizes), torch.float32

        def into(f: Callable[[torch.Tensor], torch.Tensor]) -> Project:
            return lambda rows, out: out.copy_(f(rows))

        y = gather_then_project(c, x, sizes, 6, into(lambda rows: rows @ w), f32)  # (1, T, 6)
        z = project_then_reduce_scatter(  # (1, T_i, 8)
            c, y, sizes, (1, t, 8), f32, into(lambda rows: rows @ w.T)
        )
        return y, z, gather_project_reduce(c, z, sizes, 8, f32, into(lambda r: (r @ w) @ w.T))

    got, want = on_ranks(ring, regions), on_local(len(ring), regions)

    for g, w in zip(got, want, strict=True):
        for g_part, w_part in zip(g, w, strict=True):
            torch.testing.assert_close(g_part, w_part)


@pytest.mark.parametrize("ring", [3], indirect=True)
def test_a_gathered_chunk_is_usable_before_the_gather_completes(
    ring: list[TcpRingCommunicator],
) -> None:
    """Rank 1 joins only after rank 0 has used rank 2's chunk: a whole-gather would hang."""
    rank2_chunk_used = threading.Event()

    def run(c: Communicator) -> Any:
        if c.rank == 1:
            assert rank2_chunk_used.wait(3)
        stream = c.all_gather_stream(torch.full((2, 1), float(c.rank)), [1, 1, 1], 1)
        if c.rank == 0:
            first = stream.part(ring_order(0, 3)[1]).clone()  # rank 2's chunk
            rank2_chunk_used.set()
            return first
        return stream.wait()

    got = on_ranks(ring, run)

    assert torch.equal(got[0], torch.full((2, 1), 2.0))
    assert torch.equal(got[1], torch.tensor([[0.0, 1.0, 2.0]] * 2))


@pytest.mark.parametrize("ring", [3], indirect=True)
def test_a_fed_partial_travels_before_the_rest_are_computed(
    ring: list[TcpRingCommunicator],
) -> None:
    """Rank 0 feeds its other partials only after rank 2 has its reduced rows, which need
    rank 0's first partial (rank 2's chunk): a buffered reduce-scatter would hang."""
    rank2_done = threading.Event()

    def run(c: Communicator) -> Any:
        stream = c.reduce_scatter_stream([1, 1, 1], dim=0)
        for k, r in enumerate(reduce_order(c.rank, 3)):
            if c.rank == 0 and k == 1:
                assert rank2_done.wait(3)
            stream.add(r, torch.full((1, 4), float(10 * c.rank + r)))
            if c.rank == 2 and k == 2:
                out = stream.wait()
                rank2_done.set()
                return out
        return stream.wait()

    got = on_ranks(ring, run)

    for r in range(3):
        assert torch.equal(got[r], torch.full((1, 4), float(0 + 10 + 20 + 3 * r)))


@pytest.mark.parametrize("ring", [3], indirect=True)
def test_partials_fed_out_of_ring_order_are_refused(ring: list[TcpRingCommunicator]) -> None:
    stream = ring[0].reduce_scatter_stream([1, 1, 1], dim=0)

    with pytest.raises(ValueError, match=r"in the order \[2, 1, 0\], not 0"):
        stream.add(0, torch.zeros(1, 4))


def read_rank2s_chunk(c: Communicator) -> Any:
    return c.all_gather_stream(torch.ones(1, 4), [1, 1, 1], 0).part(2)


def feed_all_partials(c: Communicator) -> Any:
    stream = c.reduce_scatter_stream([1, 1, 1], dim=0)
    for r in reduce_order(c.rank, 3):
        stream.add(r, torch.ones(1, 4))
    return stream.wait()


@pytest.mark.parametrize("ring", [3], indirect=True)
@pytest.mark.parametrize("run", [read_rank2s_chunk, feed_all_partials])
def test_a_lost_peer_releases_stream_readers_and_feeders(
    ring: list[TcpRingCommunicator], run: Any
) -> None:
    threading.Timer(0.3, ring[2].close).start()  # rank 2 never joins, then leaves

    got = outcomes(ring[:2], run)

    assert all(isinstance(e, WorkerLost) for e in got), got


@pytest.mark.parametrize("ring", [2], indirect=True)
def test_waiting_for_a_streamed_chunk_counts_as_waiting_on_the_ring(
    ring: list[TcpRingCommunicator],
) -> None:
    """The engine's trace splits each layer into compute and ring wait from the communicator's
    `stats.wait_s`: time blocked in `part(c)` is wait, not compute (it was counted as compute,
    which made overlapped layers look slower to compute)."""
    late = 0.4

    def run(c: Communicator) -> Any:
        if c.rank == 1:
            threading.Event().wait(late)
        stream = c.all_gather_stream(torch.full((2, 1), float(c.rank)), [1, 1], 1)
        before = c.stats.wait_s  # type: ignore[attr-defined]
        stream.part(1 - c.rank)
        waited = c.stats.wait_s - before  # type: ignore[attr-defined]
        stream.wait()
        return waited

    waited = on_ranks(ring, run)

    assert waited[0] >= late * 0.75  # rank 0 waited for rank 1's late chunk
