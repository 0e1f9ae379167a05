"""The TCP ring on 127.0.0.1: same results as the in-process group, refusals, lost peers.

Run this file as a script for the all-gather micro-benchmark (not a test: timings only).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch

from edge_worker.comm import framing as F
from edge_worker.comm.base import Communicator
from edge_worker.comm.local import LocalGroup
from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.errors import CommError, CommTimeout, WorkerLost

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
C = TypeVar("C", bound=Communicator)
SIZES = [5, 20, 12, 9]  # rows per rank, uneven; a ring of n uses the first n


def outcomes(comms: Sequence[C], fn: Callable[[C], T]) -> list[T | Exception]:
    """Run fn on every rank in its own thread; each rank's result or exception, by rank."""
    results: list[T | Exception] = [RuntimeError("rank did not finish in 30 s")] * len(comms)

    def run(i: int) -> None:
        try:
            results[i] = fn(comms[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(comms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def on_ranks(comms: Sequence[C], fn: Callable[[C], T]) -> list[T]:
    """Run fn on every rank in its own thread; raise the first rank's exception, if any."""
    results = outcomes(comms, fn)
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results  # type: ignore[return-value]


def on_local(n: int, fn: Callable[[Communicator], T]) -> list[T]:
    group = LocalGroup(n, timeout=10)
    try:
        return on_ranks(group.comms, fn)
    finally:
        group.close()


@pytest.fixture
def ring(request: pytest.FixtureRequest) -> Iterator[list[TcpRingCommunicator]]:
    comms = TcpRingCommunicator.loopback_ring(request.param, timeout=10)
    yield comms
    for c in comms:
        c.close()


def shaped(dim: int, rows: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A (2, 3, 4) tensor, except `rows` along `dim`."""
    shape = [2, 3, 4]
    shape[dim] = rows
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


# ----- collectives equal the in-process group's --------------------------------------------


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


# ----- point to point, issue order, inference mode ------------------------------------------


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


# ----- handshake ----------------------------------------------------------------------------


def test_a_wrong_token_is_refused_and_the_right_peer_still_joins() -> None:
    r0 = TcpRingCommunicator(0, 2, b"plan-token", timeout=10)
    r1 = TcpRingCommunicator(1, 2, b"plan-token", timeout=10)
    peers = [r0.address, r1.address]
    joined = threading.Thread(target=r1.connect, args=(peers,))
    joined.start()  # r1 now waits for rank 0 on its listening socket

    with socket.create_connection(r1.address, timeout=5) as intruder:
        intruder.sendall(F.encode_hello(0, 2, b"guessed-token"))
        refused = intruder.recv(64)
    r0.connect(peers)
    joined.join(10)
    total = on_ranks([r0, r1], lambda c: c.all_reduce(torch.ones(2)))

    assert refused == b""  # closed without an answer
    assert torch.equal(total[0], torch.full((2,), 2.0))
    r0.close()
    r1.close()


def test_a_rank_with_another_token_fails_with_a_clear_error() -> None:
    comms = [TcpRingCommunicator(r, 2, b"a" if r == 0 else b"b", timeout=2) for r in range(2)]

    errors = outcomes(comms, lambda c: c.connect([p.address for p in comms]))

    assert all(isinstance(e, CommError) for e in errors), errors
    assert any("different session tokens" in str(e) for e in errors), errors
    for c in comms:
        c.close()


# ----- lost peers and deadlines -------------------------------------------------------------


def wait_in_all_gather(c: Communicator) -> Any:
    start = time.monotonic()
    try:
        c.all_gather(torch.ones(1, 4), [1] * c.world_size, 0)
    except CommError as exc:
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


@pytest.mark.parametrize("ring", [3, 4], indirect=True)
def test_a_rank_that_closes_mid_collective_fails_the_others_quickly(
    ring: list[TcpRingCommunicator],
) -> None:
    threading.Timer(0.3, ring[0].close).start()

    got = on_ranks(ring[1:], wait_in_all_gather)  # rank 0 never joins the collective

    for error, seconds in got:
        assert isinstance(error, WorkerLost), error  # neighbours and, via them, the rest
        assert seconds < 5
    with pytest.raises(WorkerLost):  # and every later call fails at once
        ring[1].all_reduce(torch.ones(1))


@pytest.mark.parametrize("ring", [3], indirect=True)
def test_a_rank_that_leaves_when_done_fails_only_calls_that_need_it(
    ring: list[TcpRingCommunicator],
) -> None:
    ring[2].close()  # nothing pending: it says goodbye to ranks 1 and 0

    def pass_on(c: Communicator) -> Any:
        return c.send(torch.ones(3), 1) if c.rank == 0 else c.recv(0)

    got = on_ranks(ring[:2], pass_on)  # rank 1's next neighbour has gone: no matter

    assert torch.equal(got[1], torch.ones(3))
    with pytest.raises(WorkerLost, match="rank 2"):  # but a collective needs rank 2
        ring[0].all_reduce(torch.ones(1))


CHILD = """
import sys, time
from edge_worker.comm.tcp import TcpRingCommunicator
comm = TcpRingCommunicator(2, 3, bytes.fromhex(sys.argv[1]), timeout=20)
sys.stdout.write(f"{comm.address[1]}\\n"); sys.stdout.flush()
ports = [int(p) for p in sys.stdin.readline().split()]
comm.connect([("127.0.0.1", p) for p in ports])
sys.stdout.write("connected\\n"); sys.stdout.flush()
time.sleep(60)
"""


def test_a_killed_worker_process_fails_the_others_with_worker_lost() -> None:
    token = os.urandom(16)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, token.hex()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    comms = [TcpRingCommunicator(r, 3, token, timeout=20) for r in range(2)]
    try:
        port = int(child.stdout.readline())
        child.stdin.write(f"{comms[0].address[1]} {comms[1].address[1]} {port}\n")
        child.stdin.flush()
        peers = [c.address for c in comms] + [("127.0.0.1", port)]
        on_ranks(comms, lambda c: c.connect(peers))
        assert child.stdout.readline() == "connected\n"
        threading.Timer(0.3, child.send_signal, args=(signal.SIGKILL,)).start()

        got = on_ranks(comms, wait_in_all_gather)

        for error, seconds in got:
            assert isinstance(error, WorkerLost), error
            assert seconds < 5
    finally:
        child.kill()
        child.wait(10)
        for c in comms:
            c.close()


@pytest.mark.parametrize("ring", [2], indirect=True)
def test_a_peer_that_never_joins_times_out_instead_of_hanging(
    ring: list[TcpRingCommunicator],
) -> None:
    start = time.monotonic()

    with pytest.raises(CommTimeout, match=r"all_reduce did not finish within 0\.3 s"):
        ring[0].all_reduce_async(torch.zeros(1)).wait(0.3)
    assert time.monotonic() - start < 5


# ----- micro-benchmark (run this file as a script; not a test) ------------------------------


def benchmark_all_gather(world: int = 3, mb_per_rank: int = 8, repeats: int = 10) -> dict:
    """Median wall time of an all-gather of `mb_per_rank` MB per rank, TCP ring vs LocalGroup,
    and CPU time per MB delivered (all ranks' threads share this process, so the sending and
    the receiving side of every byte are both counted)."""
    n = mb_per_rank * 1024 * 1024 // 4
    xs = [torch.randn(n) for _ in range(world)]
    out: dict = {"world": world, "mb_per_rank": mb_per_rank}
    tcp = TcpRingCommunicator.loopback_ring(world)
    local = LocalGroup(world)
    for name, comms in (("tcp", list(tcp)), ("local", list(local.comms))):
        times, cpu = [], 0.0
        for _ in range(repeats + 1):
            cpu0, t0 = time.process_time(), time.perf_counter()
            on_ranks(comms, lambda c: c.all_gather(xs[c.rank], [n] * world, 0))
            times.append(time.perf_counter() - t0)
            cpu += time.process_time() - cpu0
        times = sorted(times[1:])
        moved_mb = mb_per_rank * world * (world - 1) * (repeats + 1)  # delivered to all ranks
        out[name] = {
            "median_ms": round(1000 * times[len(times) // 2], 2),
            "min_ms": round(1000 * times[0], 2),
            "cpu_ms_per_mb": round(1000 * cpu / moved_mb, 3),
        }
    for c in tcp:
        c.close()
    local.close()
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(benchmark_all_gather(), indent=2))  # a script's output, not a log
