"""A worker frozen (SIGSTOP) while its shard is on the way: its socket stays open, so the send
would wait for ever, and the websockets heartbeat cannot notice (its ping waits behind the
frame). The coordinator cuts a link that takes no data for SEND_STALL_S and reports the worker
lost, so a deployment fails over instead of hanging until the request's deadline.

Real worker processes; the model is random-weight (plumbing only), big enough that a shard
outgrows the loopback socket buffers."""

from __future__ import annotations

import os
import signal
import time

import pytest
import transformers as T

from assistant.cluster import shipping
from assistant.cluster.remote import local_workers
from edge_worker.engine.loader import from_hf
from edge_worker.errors import WorkerLost
from edge_worker.spec.plan import make_plan

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(300)]
STALL_S = 5.0


def test_a_worker_frozen_mid_shipment_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shipping, "SEND_STALL_S", STALL_S)
    gpt2 = T.GPT2LMHeadModel(
        T.GPT2Config(n_embd=512, n_layer=4, n_head=8, vocab_size=8000, n_positions=128)
    ).eval()
    cfg, weights = from_hf(gpt2)  # 66 MB in fp32: each rank's shard is tens of MB
    with local_workers(2) as (cluster, names):
        cluster.coordinator.timeout = 600.0  # only the stall detection can end the wait
        victim = cluster.processes[1]
        os.kill(victim.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(WorkerLost, match="took no data"):
                cluster.deploy(cfg, weights, make_plan(cfg, "hmp", [1.0, 1.0]), names)
            took = time.monotonic() - started
            assert not cluster.coordinator.sessions[victim.name].alive
            # The healthy worker still serves: it deploys a plan of its own.
            cluster.deploy(cfg, weights, make_plan(cfg, "local", [1.0]), names[:1])
        finally:
            os.kill(victim.proc.pid, signal.SIGCONT)
    assert took < 120, f"the frozen worker was noticed after {took:.0f} s"
