"""Plans on real worker processes over the TCP ring, compared with Hugging Face."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from assistant.cluster.remote import RemoteCluster, local_workers
from edge_worker.engine.generate import SamplingParams, generate
from edge_worker.engine.loader import from_hf
from edge_worker.errors import WorkerLost
from edge_worker.service import protocol as P
from edge_worker.spec.plan import make_plan
from tests.equivalence.models import assert_within_tolerance, reference, tiny_model

Workers = tuple[RemoteCluster, list[str]]


def ids(seq: int = 37) -> torch.Tensor:
    return torch.randint(3, 96, (1, seq), generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("family", ["bert", "llama"])
@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("overlap", [False, True], ids=["plain", "overlap"])
def test_hybrid_on_worker_processes_matches_hugging_face(
    three_workers: Workers, family: str, world: int, overlap: bool
) -> None:
    cluster, names = three_workers
    model = tiny_model(family)
    cfg, weights = from_hf(model)
    plan = make_plan(cfg, "hmp", [float(i + 1) for i in range(world)], overlap=overlap)
    cluster.deploy(cfg, weights, plan, names[:world])

    out = cluster.prefill(ids(), want="logits" if cfg.causal else "hidden")

    got = out.logits if cfg.causal else out.hidden
    assert got is not None
    assert_within_tolerance(got, reference(model, ids()))


@pytest.mark.parametrize("strategy", ["tp", "sp", "pp"])
def test_baselines_on_worker_processes_match_hugging_face(
    three_workers: Workers, strategy: str
) -> None:
    cluster, names = three_workers
    model = tiny_model("gpt2")
    cfg, weights = from_hf(model)
    cluster.deploy(cfg, weights, make_plan(cfg, strategy, [1.0, 2.0, 3.0]), names)  # type: ignore[arg-type]

    out = cluster.prefill(ids(), want="logits")

    assert out.logits is not None
    assert_within_tolerance(out.logits, reference(model, ids()))


def test_a_coordinator_that_keeps_no_cut_shards_cuts_them_again_to_ship(
    three_workers: Workers,
) -> None:
    cluster, names = three_workers
    model = tiny_model("llama")
    cfg, weights = from_hf(model)
    cluster.coordinator.shards.keep = 0  # what the benchmark does with large models
    try:
        for plan in (make_plan(cfg, "tp", [1.0, 1.0, 1.0]), make_plan(cfg, "hmp", [3.0, 2.0, 1.0])):
            cluster.deploy(cfg, weights, plan, names)
            out = cluster.prefill(ids(), want="logits")
            assert out.logits is not None
            assert_within_tolerance(out.logits, reference(model, ids()))
        assert not cluster.coordinator.shards.kept  # hashes kept, tensors not
    finally:
        cluster.coordinator.shards.keep = 32


def test_generation_on_worker_processes_equals_in_process(three_workers: Workers) -> None:
    cluster, names = three_workers
    model = tiny_model("qwen2")
    cfg, weights = from_hf(model)
    cluster.deploy(cfg, weights, make_plan(cfg, "hmp", [1.0, 2.0, 3.0], overlap=True), names)
    prompt = ids(9)[0].tolist()

    tokens = generate(cluster, prompt, SamplingParams(12)).tokens

    with torch.inference_mode():
        ref = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=12,
            min_new_tokens=12,
            do_sample=False,
            pad_token_id=0,
        )
    assert tokens == ref[0, len(prompt) :].tolist()


def test_results_carry_per_layer_traces(three_workers: Workers) -> None:
    cluster, names = three_workers
    model = tiny_model("llama")
    cfg, weights = from_hf(model)
    cluster.deploy(cfg, weights, make_plan(cfg, "hmp", [1.0, 1.0, 1.0]), names)

    cluster.prefill(ids(), want="logits")

    for r in cluster.last:
        assert len(r.result.layers) == cfg.n_layers
        assert r.result.bytes_sent > 0
        assert r.result.total_ms >= r.result.comm_wait_ms >= 0


def test_a_killed_worker_raises_worker_lost_within_five_seconds() -> None:
    model = tiny_model("bert")
    cfg, weights = from_hf(model)
    with local_workers(3) as (cluster, names):
        cluster.deploy(cfg, weights, make_plan(cfg, "hmp", [1.0, 2.0, 3.0]), names)
        long = torch.randint(3, 96, (8, 64))
        errors: list[BaseException] = []
        raised_at: list[float] = []

        def hammer() -> None:
            try:
                for _ in range(10_000):
                    cluster.prefill(long)
            except BaseException as exc:
                errors.append(exc)
                raised_at.append(time.monotonic())

        t = threading.Thread(target=hammer)
        t.start()
        time.sleep(1.0)
        killed_at = time.monotonic()
        cluster.processes[1].proc.kill()
        t.join(30)

        assert errors and isinstance(errors[0], WorkerLost), errors
        assert raised_at[0] - killed_at < 5.0


def test_a_restarted_worker_reuses_its_cached_shard(tmp_path) -> None:
    model = tiny_model("llama")
    cfg, weights = from_hf(model)
    plan = make_plan(cfg, "hmp", [1.0, 2.0])
    with local_workers(2, data_dir=tmp_path) as (cluster, names):
        cluster.deploy(cfg, weights, plan, names)
    with local_workers(2, data_dir=tmp_path) as (cluster, names):
        hellos = cluster.wait_for_workers(2)
        assert all(h.cached_shards for h in hellos)
        cluster.deploy(cfg, weights, plan, names)

        out = cluster.prefill(ids(), want="logits")

    assert out.logits is not None
    assert_within_tolerance(out.logits, reference(model, ids()))


def test_a_worker_survives_malformed_frames(three_workers: Workers) -> None:
    cluster, names = three_workers
    session = cluster.coordinator.sessions[names[0]]

    async def poke() -> list[object]:
        await session.ws.send("{not json")
        await session.ws.send(b"\x00\x01garbage")
        await session.ws.send(f'{{"type": "run", "version": {P.VERSION}}}')
        return [await session.inbox.get() for _ in range(3)]

    replies = cluster.call(poke(), timeout=10)

    assert [getattr(r, "code", None) for r in replies] == ["bad_message"] * 3
    model = tiny_model("bert")
    cfg, weights = from_hf(model)
    cluster.deploy(cfg, weights, make_plan(cfg, "hmp", [1.0, 1.0, 1.0]), names)
    out = cluster.prefill(ids())
    assert out.hidden is not None
    assert_within_tolerance(out.hidden, reference(model, ids()))
