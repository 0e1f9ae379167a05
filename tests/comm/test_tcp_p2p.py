"""The TCP ring's point-to-point calls, issue order and inference mode on 127.0.0.1, a world
of one, and ranks that disagree about a split."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from edge_worker.comm.base import Communicator
from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.errors import CommError
from tests.comm.ranks import SIZES, on_ranks, outcomes


@pytest.mark.parametrize("ring", [3], indirect=True)
def test_send_and_recv_pass_a_tensor_down_the_ring(ring: list[TcpRingCommunicator]) -> None:
    def stage(c: Communicator) -> Any:
        x = torch.arange(12, dtype=torch.bfloat16).view(3, 4) if c.rank == 0 else c.recv(c.rank - 1)
        if c.rank < 2:
            c.send(x + 1, c.rank + 1)
            return None
        return x

    got = on_ranks(ring, stage)[2]

    assert isinstance(got, torch.Tensor)
    assert torch.equal(got, torch.arange(12, dtype=torch.bfloat16).view(3, 4) + 2)


@pytest.mark.parametrize("ring", [2], indirect=True)
def test_two_ranks_can_send_to_each_other_before_receiving(ring: list[TcpRingCommunicator]) -> None:
    big = torch.randn(4 * 1024 * 1024)  # more than the socket buffers hold

    def swap(c: Communicator) -> Any:
        c.send(big * c.rank, 1 - c.rank)
        return c.recv(1 - c.rank)

    got = on_ranks(ring, swap)

    assert torch.equal(got[0], big)
    assert torch.equal(got[1], big * 0)


@pytest.mark.parametrize("ring", [4], indirect=True)
def test_sending_to_a_rank_that_is_not_a_neighbour_is_an_error(
    ring: list[TcpRingCommunicator],
) -> None:
    with pytest.raises(
        ValueError, match=r"neighbours 1 \(next\) and 3 \(previous\), not to rank 2"
    ):
        ring[0].send(torch.zeros(1), 2)


@pytest.mark.parametrize("ring", [3], indirect=True)
def test_async_calls_complete_in_issue_order(ring: list[TcpRingCommunicator]) -> None:
    sizes = SIZES[:3]

    def calls(c: Communicator) -> Any:
        works = [
            c.all_gather_async(torch.full((sizes[c.rank], 2), float(i)), sizes, 0) for i in range(5)
        ] + [c.all_reduce_async(torch.ones(3))]
        last = works[-1].wait()
        assert all(w._future is not None and w._future.done() for w in works)
        return [w.wait() for w in works[:-1]], last

    for gathered, total in on_ranks(ring, calls):
        for i, g in enumerate(gathered):
            assert torch.equal(g, torch.full((37, 2), float(i)))
        assert torch.equal(total, torch.full((3,), 3.0))


@pytest.mark.parametrize("ring", [3], indirect=True)
@pytest.mark.parametrize("inference", [True, False])
def test_results_follow_the_callers_inference_mode(
    ring: list[TcpRingCommunicator], inference: bool
) -> None:
    def call(c: Communicator) -> Any:
        with torch.inference_mode(inference):
            s = c.reduce_scatter(torch.ones(2, 37, 4), SIZES[:3], 1)  # adds run on link threads
        return s if inference else s.add_(0)  # a normal tensor can be updated in place

    for rank, got in enumerate(on_ranks(ring, call)):
        assert isinstance(got, torch.Tensor), got
        assert got.is_inference() == inference
        assert torch.equal(got, torch.full((2, SIZES[rank], 4), 3.0))


def test_a_world_of_one_needs_no_sockets_and_returns_its_input() -> None:
    comm = TcpRingCommunicator(0, 1, b"t")
    comm.connect([comm.address])
    x = torch.randn(2, 3)

    assert comm.all_gather(x, [3], dim=1) is x
    assert comm.all_reduce(x) is x
    with pytest.raises(ValueError, match="neighbours"):
        comm.send(x, 0)
    comm.close()


@pytest.mark.parametrize("ring", [2], indirect=True)
def test_ranks_that_disagree_on_a_split_fail_instead_of_mixing_data(
    ring: list[TcpRingCommunicator],
) -> None:
    splits = [[2, 3], [3, 2]]

    got = outcomes(
        ring, lambda c: c.all_gather(torch.ones(splits[c.rank][c.rank]), splits[c.rank], 0)
    )

    assert all(isinstance(e, CommError) for e in got), got
    assert any("issued different collectives or splits" in str(e) for e in got), got
