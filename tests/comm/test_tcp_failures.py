"""The TCP ring when things go wrong: wrong tokens, ranks that leave or are killed, peers
that never join. Every failure is a clear CommError within seconds, never a hang."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from edge_worker.comm import framing as F
from edge_worker.comm.base import Communicator
from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.errors import CommError, CommTimeout, WorkerLost
from tests.comm.ranks import on_ranks, outcomes

ROOT = Path(__file__).resolve().parents[2]

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


@pytest.mark.parametrize("waiting_in", ["dial", "accept"])
def test_a_connect_called_off_gives_up_at_once(waiting_in: str) -> None:
    """`abort()` from another thread (the worker's, on a Release of the plan) ends a connect
    waiting for a peer that never comes, whether it still dials the next rank (nobody listens)
    or, the next rank there, waits for the previous one to call."""
    r0 = TcpRingCommunicator(0, 3, b"plan-token", timeout=30)
    r1 = TcpRingCommunicator(1, 3, b"plan-token", timeout=30)
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        nobody = closed.getsockname()[:2]
    peers = [r0.address, nobody if waiting_in == "dial" else r1.address, nobody]

    def r1_joins() -> None:  # it answers r0's call, then waits for a rank 2 that never comes
        with contextlib.suppress(CommError):
            r1.connect([r0.address, r1.address, nobody])

    joining = threading.Thread(target=r1_joins)
    if waiting_in == "accept":
        joining.start()
    threading.Timer(0.5, r0.abort).start()
    started = time.monotonic()
    with pytest.raises(CommError, match="called off"):
        r0.connect(peers)
    assert time.monotonic() - started < 5
    r1.abort()
    if waiting_in == "accept":
        joining.join(10)
        assert not joining.is_alive()
    for comm in (r0, r1):
        comm.close()
