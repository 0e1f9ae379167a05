"""The bench's rings run the product's mutual TLS (galaxy_bench/ring_tls.py), and a variant may
ask for the plain ring beside it: real development worker processes on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assistant.cluster.remote import local_workers
from edge_worker.engine.loader import from_hf
from edge_worker.errors import GalaxyError
from edge_worker.service.checks import BadMessage
from edge_worker.service.worker import Worker
from edge_worker.spec.plan import make_plan
from galaxy_bench.ring_tls import issue_ring_credentials
from tests.equivalence.models import assert_within_tolerance, reference, tiny_model

NAMES = ["worker-0", "worker-1"]


@pytest.mark.slow
@pytest.mark.long
def test_the_ring_is_encrypted_with_the_bench_credentials_and_plain_on_request(
    tmp_path: Path,
) -> None:
    """worker-1 holds a certificate of another CA: the encrypted ring cannot form (so TLS is
    really on), the plain one can; with one CA the encrypted ring answers correctly."""
    issue_ring_credentials(tmp_path / "one", NAMES)
    issue_ring_credentials(tmp_path / "other", NAMES[1:])
    (tmp_path / "one" / NAMES[1] / "credentials").rename(tmp_path / "stale")
    (tmp_path / "other" / NAMES[1] / "credentials").rename(
        tmp_path / "one" / NAMES[1] / "credentials"
    )
    model = tiny_model("llama")
    cfg, weights = from_hf(model)
    plan = make_plan(cfg, "hmp", [1.0, 1.0])
    ids = torch.tensor([[5, 17, 3, 9, 41, 2]])

    with (
        local_workers(2, data_dir=tmp_path / "one") as (cluster, names),
        pytest.raises(GalaxyError, match="ring did not form"),
    ):
        cluster.deploy(cfg, weights, plan, names)
    with local_workers(2, data_dir=tmp_path / "one") as (cluster, names):
        cluster.deploy(cfg, weights, plan, names, plain_ring=True)
        out = cluster.prefill(ids, want="logits")
    assert out.logits is not None
    assert_within_tolerance(out.logits, reference(model, ids))

    issue_ring_credentials(tmp_path / "same", NAMES)
    with local_workers(2, data_dir=tmp_path / "same") as (cluster, names):
        cluster.deploy(cfg, weights, plan, names)
        out = cluster.prefill(ids, want="logits")
    assert out.logits is not None
    assert_within_tolerance(out.logits, reference(model, ids))


def test_only_a_development_worker_runs_a_plain_ring(tmp_path: Path) -> None:
    worker = Worker("pi", tmp_path)
    try:
        with pytest.raises(BadMessage, match="without TLS is a development mode"):
            worker._ring_tls(plain=True)
        assert worker._ring_tls(plain=False) is None  # (no credentials: a test's worker)
    finally:
        worker.compute.shutdown()
