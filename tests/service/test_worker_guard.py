"""A worker survives any message: a malformed control message of every type is answered with an
`Error` (and its code) and the same worker process then serves a correct request (a real worker
process driven by a development coordinator)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest
import torch

from assistant.cluster.remote import RemoteCluster, local_workers
from edge_worker.engine.loader import from_hf
from edge_worker.service import protocol as P
from edge_worker.spec.plan import make_plan
from tests.equivalence.models import assert_within_tolerance, reference, tiny_model

pytestmark = pytest.mark.slow
IDS = torch.tensor([[5, 17, 3, 9, 41, 2]])


@pytest.fixture(scope="module")
def worker() -> Iterator[tuple[RemoteCluster, str, dict[str, Any], str]]:
    """One worker with a tiny llama deployed: (cluster, name, the model's config, plan id)."""
    with local_workers(1) as (cluster, names):
        model = tiny_model("llama")
        cfg, weights = from_hf(model)
        cluster.deploy(cfg, weights, make_plan(cfg, "local", [1.0]), names)
        assert cluster.plan_id is not None
        yield cluster, names[0], asdict(cfg), cluster.plan_id


def poke(cluster: RemoteCluster, name: str, *frames: str | bytes) -> Any:
    """Send raw frames on the worker's control link; the first message that comes back."""
    session = cluster.coordinator.sessions[name]

    async def go() -> Any:
        for f in frames:
            await session.ws.send(f)
        # a reply naming a run arrives among the run replies, any other among the control ones
        replies = [asyncio.ensure_future(q.get()) for q in (session.inbox, session.runs)]
        done, pending = await asyncio.wait(replies, return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()
        return done.pop().result()

    return cluster.call(go(), timeout=60)


def still_serves(cluster: RemoteCluster) -> None:
    out = cluster.prefill(IDS, want="logits")
    assert out.logits is not None
    assert_within_tolerance(out.logits, reference(tiny_model("llama"), IDS))


def msg(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "version": P.VERSION, **fields})


def run(plan_id: str, ids: Any, op: str = "prefill", **extra: Any) -> str:
    return msg("run", run_id=999, plan_id=plan_id, op=op, input_ids=ids, **extra)


def assign(cfg: dict[str, Any], **changes: Any) -> str:
    fields = {
        "plan_id": "bad",
        "rank": 0,
        "peers": [{"name": "x", "host": "127.0.0.1", "port": 9}],
        "token": "ab" * 16,
        "config": cfg,
        "plan": asdict(make_plan(tiny_config(cfg), "local", [1.0])),
        "shard_hash": "0" * 64,
        "shard_meta": {},
        "shard_tensors": 0,
        **changes,
    }
    return msg("assign", **fields)


def tiny_config(cfg: dict[str, Any]) -> Any:
    from edge_worker.spec.config import ModelConfig

    return ModelConfig(**cfg)


CASES: dict[str, Any] = {
    # Assign
    "assign: a config that is no model": lambda c, p: assign({**c, "n_heads": 0}),
    "assign: a rank outside its ring": lambda c, p: assign(c, rank=3),
    "assign: a shard neither sent nor cached": lambda c, p: assign(c),
    "assign: more tensors than any shard": lambda c, p: assign(c, shard_tensors=10**6),
    # Connect
    "connect: a plan never loaded": lambda c, p: msg("connect", plan_id="nope"),
    "connect: no plan id": lambda c, p: msg("connect"),
    # Run
    "run: an unknown plan": lambda c, p: run("nope", [[1, 2]]),
    "run: ragged rows": lambda c, p: run(p, [[1, 2, 3], [4]]),
    "run: a token outside the vocabulary": lambda c, p: run(p, [[1, 10**6]]),
    "run: a negative token": lambda c, p: run(p, [[1, -4]]),
    "run: no tokens": lambda c, p: run(p, [[]]),
    "run: a decode step of two tokens": lambda c, p: run(p, [[1, 2]], op="decode"),
    "run: a mask of another shape": lambda c, p: run(p, [[1, 2]], attention_mask=[[1]]),
    "run: longer than the model's positions": lambda c, p: run(p, [[1] * 100]),
    "run: a decode step with no prefill": lambda c, p: run(p, [[1]], op="decode", session="x"),
    # Profile
    "profile: a model far too large": lambda c, p: msg(
        "profile",
        config={**c, "hidden_size": 1 << 20, "intermediate_size": 1 << 22},
        seq=8,
        rows=[8],
        heads=[1],
        cols=[64],
    ),
    "profile: a config missing fields": lambda c, p: msg(
        "profile", config={"family": "llama"}, seq=8, rows=[8], heads=[1], cols=[64]
    ),
    # Probe
    "probe: a rank outside its ring": lambda c, p: msg(
        "probe",
        probe_id="p",
        rank=7,
        peers=[{"name": "x", "host": "127.0.0.1", "port": 9}] * 2,
        token="ab" * 16,
    ),
    # Shutdown, and messages a worker never takes
    "shutdown: of another protocol version": lambda c, p: json.dumps(
        {"type": "shutdown", "version": P.VERSION + 1}
    ),
    "hello: not a worker's message": lambda c, p: msg(
        "hello", name="x", data_host="h", data_port=1
    ),
    "ready: not a worker's message": lambda c, p: msg("ready", plan_id="x", shard_mb=1.0),
    "loaded: not a worker's message": lambda c, p: msg("loaded", plan_id="x", shard_mb=1.0),
    "error: not a worker's message": lambda c, p: msg("error", code="internal", text="x"),
    "not json": lambda c, p: "{not json",
    "a bare binary frame": lambda c, p: b"\x00\x01garbage",
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_malformed_message_is_answered_with_an_error_and_the_worker_serves_on(
    worker: tuple[RemoteCluster, str, dict[str, Any], str], case: str
) -> None:
    cluster, name, cfg, plan_id = worker

    answer = poke(cluster, name, CASES[case](cfg, plan_id))

    assert isinstance(answer, P.Error), answer
    assert answer.code in ("bad_message", "bad_shard", "plan", "version", "internal")
    assert answer.text
    if case.startswith("shutdown"):
        assert answer.code == "version"
    still_serves(cluster)
