"""Hostile peers on a worker's ring port (cases 16-24, and case 25 of test_exhaustion's
list; conftest.py says how every case ends).

The ring port (a real worker joining a ring with a peer the test plays)
 16. no certificate                            TLS refused, no hello back
 17. a certificate of another home             TLS refused
 18. no plan token                             closed without a hello ("wrong session token")
 19. a wrong token                             closed without a hello
 20. an old plan's token                       closed without a hello
 21. random bytes instead of a hello           closed ("bad hello magic")
 22. a frame announcing a 4 GiB tensor         the link is refused before allocating
 23. a truncated frame                         the link ends, the worker carries on
 24. random frames                             the link ends ("bad frame magic")
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import time

import pytest
import torch

from edge_worker.comm import framing as F
from edge_worker.errors import GalaxyError
from edge_worker.service.credentials import Credentials
from tests.security.conftest import Home
from tests.security.hostile import (
    RingProbe,
    WorkerLog,
    closed,
    idle,
    stranger_tls,
)

pytestmark = [pytest.mark.slow, pytest.mark.long]

# ----- the ring port -------------------------------------------------------------------------


def hello(token: bytes) -> bytes:
    return F.encode_hello(1, 2, token)


@pytest.mark.parametrize(
    ("who", "says", "reason"),
    [
        pytest.param(None, "the token", "", id="no-certificate"),
        pytest.param("neighbour", "the token", "certificate", id="another-homes-certificate"),
        pytest.param("mallory", "no token", "wrong session token", id="no-plan-token"),
        pytest.param("mallory", "a random token", "wrong session token", id="wrong-token"),
        pytest.param("mallory", "random bytes", "bad hello magic", id="random-bytes"),
    ],
)
def test_a_ring_peer_without_the_plan_or_the_homes_certificate_is_refused(
    home: Home,
    mallory: Credentials,
    neighbour: Credentials,
    who: str | None,
    says: str,
    reason: str,
) -> None:
    worker = home.workers[1]
    log = WorkerLog(worker.log_path)
    with RingProbe(home.gw, worker.name, mallory) as probe:
        tls = None
        if who == "mallory":
            tls = mallory_tls(mallory, worker.name)
        elif who == "neighbour":
            tls = stranger_tls(neighbour)
        sock = probe.connect(tls)
        message = {
            "the token": hello(probe.token),
            "no token": hello(b""),
            "a random token": hello(secrets.token_bytes(len(probe.token))),
            "random bytes": os.urandom(64),
        }[says]
        with contextlib.suppress(OSError):  # a refused TLS peer may be cut off mid-send
            sock.sendall(message)
        answer = closed(sock)
        refused = log.wait_for("refused a ring connection")
        probe.join()  # the worker kept waiting for its real peer

    assert not answer.startswith(F.HELLO_MAGIC) and (tls is None or answer == b"")
    assert reason in refused
    home.assert_still_serving()


def mallory_tls(mallory: Credentials, worker: str) -> ssl.SSLContext:
    return mallory.ring_contexts()[1]


def test_a_ring_peer_with_an_old_plans_token_is_refused(home: Home, mallory: Credentials) -> None:
    worker = home.workers[0]
    with RingProbe(home.gw, worker.name, mallory) as earlier:
        earlier.join()  # a ring mallory was part of
    log = WorkerLog(worker.log_path)

    with RingProbe(home.gw, worker.name, mallory) as probe:
        sock = probe.connect(mallory_tls(mallory, worker.name))
        sock.sendall(hello(earlier.token))
        answer = closed(sock)
        refused = log.wait_for("refused a ring connection")
        probe.join()

    assert answer == b"" and "wrong session token" in refused
    home.assert_still_serving()


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        pytest.param(
            F.encode_header(F.Op.SEND_META, torch.float32, 0, 0, 0, 8) + F.encode_shape((1 << 30,)),
            "announced a 4294967296 byte tensor",
            id="4-gib-tensor",
        ),
        pytest.param(
            F.encode_header(F.Op.ALL_REDUCE, torch.float32, 0, 0, 0, 4)[:15],
            "closed",
            id="truncated",
        ),
        pytest.param(os.urandom(4096), "bad frame magic", id="random-frames"),
    ],
)
def test_a_bad_frame_ends_the_ring_link_not_the_worker(
    home: Home, mallory: Credentials, frames: bytes, reason: str
) -> None:
    worker = home.workers[1]
    with RingProbe(home.gw, worker.name, mallory) as probe:
        link = probe.join()
        link.sendall(frames)
        if reason != "closed":
            closed(link)  # the worker ends the link itself

    assert isinstance(probe.outcome, GalaxyError), probe.outcome
    assert reason in str(probe.outcome)
    home.assert_still_serving()


def test_idle_connections_do_not_stop_a_ring_forming(home: Home, mallory: Credentials) -> None:
    worker = home.workers[0]
    with RingProbe(home.gw, worker.name, mallory) as probe:
        silent = idle(*probe.address, 40)
        started = time.monotonic()
        probe.join()
        joined_s = time.monotonic() - started
        for s in silent:
            s.close()

    assert joined_s < 5.0  # it was 5 s per silent connection before it: 200 s here
    home.assert_still_serving()
