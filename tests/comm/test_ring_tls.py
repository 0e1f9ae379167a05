"""The ring over mutual TLS: peers must hold the home's certificates for the plan's names."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import torch

from assistant.trust.ca import HomeCA
from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.errors import CommError
from edge_worker.service.credentials import Credentials


def creds(ca: HomeCA, root: Path, name: str) -> Credentials:
    pending, csr = Credentials.new_request(root / name, name)
    cert, _ = ca.issue_device_cert(csr, name)
    return pending.save(cert, ca.cert_pem, "wss://127.0.0.1:1/worker")


def run_ring(identities: list[Credentials], names: list[str]) -> list[object]:
    token = secrets.token_bytes(16)
    comms = [
        TcpRingCommunicator(r, len(names), token, timeout=5, names=names, tls=c.ring_contexts())
        for r, c in enumerate(identities)
    ]
    out: list[object] = [None] * len(comms)

    def rank(r: int) -> None:
        try:
            comms[r].connect([c.address for c in comms])
            out[r] = comms[r].all_gather(torch.full((2,), float(r)), [2] * len(comms), dim=0)
        except Exception as exc:
            out[r] = exc
        finally:
            comms[r].close()

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(len(comms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_a_ring_of_paired_devices_runs_over_tls(tmp_path: Path) -> None:
    ca = HomeCA.load_or_create(tmp_path / "ca")
    names = ["kitchen-pi", "laptop", "desk-pc"]

    out = run_ring([creds(ca, tmp_path, n) for n in names], names)

    for got in out:
        assert isinstance(got, torch.Tensor)
        assert got.tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]


def test_a_peer_without_the_plans_credentials_is_refused(tmp_path: Path) -> None:
    ca = HomeCA.load_or_create(tmp_path / "ca")
    names = ["kitchen-pi", "laptop"]
    impostor = creds(ca, tmp_path, "garage-pi")  # a real device of the home, not in this plan

    out = run_ring([creds(ca, tmp_path, "kitchen-pi"), impostor], names)

    assert all(isinstance(o, CommError) for o in out), out


def test_a_peer_from_another_home_is_refused(tmp_path: Path) -> None:
    ca = HomeCA.load_or_create(tmp_path / "ca")
    other = HomeCA.load_or_create(tmp_path / "other")
    names = ["kitchen-pi", "laptop"]

    out = run_ring(
        [creds(ca, tmp_path, "kitchen-pi"), creds(other, tmp_path / "o", "laptop")], names
    )

    assert all(isinstance(o, CommError) for o in out), out
