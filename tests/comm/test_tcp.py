"""The TCP ring's collectives on 127.0.0.1: the same results as the in-process group, for
uneven splits, every dimension, empty shares, half precision and multi-piece tensors."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import torch

from edge_worker.comm import framing as F
from edge_worker.comm import link as link_module
from edge_worker.comm.base import Communicator
from edge_worker.comm.tcp import TcpRingCommunicator
from tests.comm.ranks import SIZES, on_local, on_ranks, shaped


@pytest.mark.parametrize("ring", [2, 3, 4], indirect=True)
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_uneven_all_gather_is_exactly_the_local_groups(
    ring: list[TcpRingCommunicator], dim: int
) -> None:
    sizes = SIZES[: len(ring)]

    def call(c: Communicator) -> Any:
        return c.all_gather(shaped(dim, sizes[c.rank], c.rank), sizes, dim)

    got, want = on_ranks(ring, call), on_local(len(ring), call)

    for g, w in zip(got, want, strict=True):
        assert isinstance(g, torch.Tensor), g
        assert torch.equal(g, w)


@pytest.mark.parametrize("ring", [2, 3, 4], indirect=True)
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_uneven_reduce_scatter_matches_the_local_group(
    ring: list[TcpRingCommunicator], dim: int
) -> None:
    sizes = SIZES[: len(ring)]

    def call(c: Communicator) -> Any:
        return c.reduce_scatter(shaped(dim, sum(sizes), c.rank), sizes, dim)

    got, want = on_ranks(ring, call), on_local(len(ring), call)

    for g, w in zip(got, want, strict=True):
        assert isinstance(g, torch.Tensor), g
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("ring", [2, 3, 4], indirect=True)
@pytest.mark.parametrize("shape", [(), (1, 1, 48), (2, 37, 48), (5, 4099)], ids=str)
def test_all_reduce_gives_every_rank_the_same_sum(
    ring: list[TcpRingCommunicator], shape: tuple
) -> None:
    """Small tensors are gathered whole, (5, 4099) (80 KiB) goes by reduce-scatter + gather."""
    xs = [torch.randn(shape, generator=torch.Generator().manual_seed(r)) for r in range(len(ring))]

    got = on_ranks(ring, lambda c: c.all_reduce(xs[c.rank]))

    for g in got:
        assert isinstance(g, torch.Tensor), g
        assert g.shape == shape
        torch.testing.assert_close(g, sum(xs))
        assert torch.equal(g, got[0])


@pytest.mark.parametrize("ring", [3], indirect=True)
def test_a_small_all_reduce_is_exactly_the_local_groups(ring: list[TcpRingCommunicator]) -> None:
    def call(c: Communicator) -> Any:
        return c.all_reduce(torch.randn(1, 1, 576, generator=torch.Generator().manual_seed(c.rank)))

    got, want = on_ranks(ring, call), on_local(3, call)

    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


@pytest.mark.parametrize("ring", [3], indirect=True)
def test_a_rank_with_no_rows_takes_part_in_gather_and_scatter(
    ring: list[TcpRingCommunicator],
) -> None:
    sizes = [0, 3, 2]

    def call(c: Communicator) -> Any:
        gathered = c.all_gather(shaped(1, sizes[c.rank], c.rank), sizes, 1)
        return gathered, c.reduce_scatter(shaped(1, 5, 10 + c.rank), sizes, 1)

    got, want = on_ranks(ring, call), on_local(3, call)

    for (g_all, g_own), (w_all, w_own) in zip(got, want, strict=True):
        assert torch.equal(g_all, w_all)
        torch.testing.assert_close(g_own, w_own)
    assert got[0][1].shape == (2, 0, 4)


@pytest.mark.parametrize("ring", [3], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_tensors_travel_as_bytes(
    ring: list[TcpRingCommunicator], dtype: torch.dtype
) -> None:
    sizes = SIZES[:3]

    def call(c: Communicator) -> Any:
        x = shaped(1, sizes[c.rank], c.rank, dtype)
        return c.all_gather(x, sizes, 1), c.reduce_scatter(shaped(1, 37, c.rank, dtype), sizes, 1)

    got, want = on_ranks(ring, call), on_local(3, call)

    for (g_all, g_own), (w_all, w_own) in zip(got, want, strict=True):
        assert g_all.dtype == dtype and torch.equal(g_all, w_all)
        torch.testing.assert_close(g_own, w_own)


@pytest.mark.parametrize("ring", [3], indirect=True)
def test_eight_megabytes_per_rank_travel_in_pieces(ring: list[TcpRingCommunicator]) -> None:
    n = 2 * 1024 * 1024  # float32 elements: 8 MB per rank
    xs = [torch.randn(n, generator=torch.Generator().manual_seed(r)) for r in range(3)]

    def call(c: Communicator) -> Any:
        g = c.all_gather(xs[c.rank].view(1, n), [1, 1, 1], 0)
        s = c.reduce_scatter(torch.cat(xs).view(3, n) * (c.rank + 1), [1, 1, 1], 0)
        return g, s, c.all_reduce(xs[c.rank])

    got = on_ranks(ring, call)

    for rank, (g, s, a) in enumerate(got):
        assert torch.equal(g, torch.stack(xs))
        torch.testing.assert_close(s[0], xs[rank] * 6)
        torch.testing.assert_close(a, sum(xs))
    gather = ring[0].stats.recent[0]
    assert gather.bytes_sent == 2 * (8 * 2**20 + 8 * F.FRAME_BYTES)  # 2 steps, 8 pieces of 1 MiB


def test_the_link_threads_can_yield_the_cpu_to_the_compute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With `RING_NICE` set, link threads run at a lower priority than the thread that made
    the ring, which computes: where they share a core, the compute keeps it."""
    monkeypatch.setattr(link_module, "RING_NICE", 5)
    ring = TcpRingCommunicator.loopback_ring(2, timeout=5)
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    threads = [t for link in ring[0]._links.values() for t in link._threads]
    assert len(threads) == 4
    want = min(19, mine + 5)
    deadline = time.monotonic() + 5  # each thread lowers its own priority as it starts
    for t in threads:
        assert t.native_id is not None
        while os.getpriority(os.PRIO_PROCESS, t.native_id) != want:
            assert time.monotonic() < deadline, f"{t.name} still runs at the compute's priority"
            time.sleep(0.01)
    for c in ring:
        c.close()
