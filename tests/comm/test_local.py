"""The in-process communicator: uneven collectives, world of one, deadlines and aborts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import torch

from edge_worker.comm.base import Communicator
from edge_worker.comm.local import LocalGroup
from edge_worker.errors import CommTimeout, WorkerLost


def on_ranks(group: LocalGroup, fn: Callable[[Communicator], object]) -> list[object]:
    results: list[object] = [None] * group.world_size

    def run(rank: int) -> None:
        try:
            results[rank] = fn(group.comms[rank])
        except Exception as exc:  # returned, so the test can assert on it
            results[rank] = exc

    threads = [threading.Thread(target=run, args=(r,)) for r in range(group.world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_uneven_all_gather_concatenates_in_rank_order() -> None:
    sizes = [5, 20, 12]
    group = LocalGroup(3)

    out = on_ranks(
        group,
        lambda c: c.all_gather(torch.full((2, sizes[c.rank], 4), float(c.rank)), sizes, dim=1),
    )

    expected = torch.cat([torch.full((2, s, 4), float(r)) for r, s in enumerate(sizes)], dim=1)
    for got in out:
        torch.testing.assert_close(got, expected)


def test_uneven_reduce_scatter_sums_and_keeps_own_rows() -> None:
    sizes = [1, 3, 2]
    group = LocalGroup(3)
    x = [torch.randn(6, 5) for _ in range(3)]

    out = on_ranks(group, lambda c: c.reduce_scatter(x[c.rank], sizes, dim=0))

    total = x[0] + x[1] + x[2]
    torch.testing.assert_close(out[0], total[0:1])
    torch.testing.assert_close(out[1], total[1:4])
    torch.testing.assert_close(out[2], total[4:6])


def test_all_reduce_gives_every_rank_the_same_sum() -> None:
    group = LocalGroup(4)
    x = [torch.randn(3, 3) for _ in range(4)]

    out = on_ranks(group, lambda c: c.all_reduce(x[c.rank]))

    for got in out:
        assert torch.equal(got, out[0])
    torch.testing.assert_close(out[0], sum(x))


def test_send_and_recv_between_ranks() -> None:
    group = LocalGroup(2)

    def step(c: Communicator) -> object:
        if c.rank == 0:
            c.send(torch.arange(4.0), 1)
            return None
        return c.recv(0)

    assert torch.equal(on_ranks(group, step)[1], torch.arange(4.0))


def test_a_world_of_one_returns_its_input() -> None:
    comm = LocalGroup(1).comms[0]
    x = torch.randn(2, 3)

    assert comm.all_gather(x, [3], dim=1) is x
    assert comm.reduce_scatter(x, [2], dim=0) is x
    assert comm.all_reduce(x) is x


def test_a_wrong_chunk_size_is_an_error_not_a_wrong_result() -> None:
    comm = LocalGroup(2).comms[0]

    with pytest.raises(ValueError, match="holds 3 rows along dim 0, but the split gives it 2"):
        comm.all_gather(torch.zeros(3), [2, 2], dim=0)


def test_a_missing_peer_times_out_instead_of_hanging() -> None:
    group = LocalGroup(2, timeout=0.3)
    start = time.monotonic()

    with pytest.raises(CommTimeout):
        group.comms[0].all_reduce(torch.zeros(1))
    assert time.monotonic() - start < 5


def test_abort_releases_waiting_ranks_with_worker_lost() -> None:
    group = LocalGroup(3, timeout=30)
    threading.Timer(0.2, group.abort).start()

    out = on_ranks(group, lambda c: c.all_reduce(torch.zeros(1)) if c.rank < 2 else None)

    assert isinstance(out[0], WorkerLost)
    assert isinstance(out[1], WorkerLost)
