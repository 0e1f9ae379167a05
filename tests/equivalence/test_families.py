"""Every family, every strategy, world sizes 1-4, even and uneven splits, against Hugging Face."""

from __future__ import annotations

import pytest
import torch

from edge_worker.engine.loader import from_hf
from edge_worker.engine.runtime import InProcessCluster
from edge_worker.spec.plan import ParallelPlan, make_plan, validate
from tests.equivalence.models import FAMILIES, assert_within_tolerance, reference, tiny_model

SEQ = 37
SPLITS = [
    ("local", [1.0]),
    ("hmp", [1.0]),
    ("hmp", [1.0, 1.0]),
    ("hmp", [1.0, 2.0]),
    ("hmp", [1.0, 2.0, 3.0]),
    ("hmp", [1.0, 1.0, 1.0, 1.0]),
    ("hmp", [4.0, 3.0, 2.0, 1.0]),
    ("tp", [1.0, 1.0]),
    ("tp", [1.0, 1.0, 1.0]),
    ("tp", [1.0, 1.0, 1.0, 1.0]),
    ("sp", [1.0, 3.0]),
    ("sp", [5.0, 20.0, 12.0]),
    ("sp", [1.0, 1.0, 1.0, 1.0]),
    ("pp", [1.0, 1.0]),
    ("pp", [2.0, 1.0, 1.0]),
    ("pp", [1.0, 1.0, 1.0, 1.0]),
]


def run(model, plan: ParallelPlan, ids: torch.Tensor) -> torch.Tensor:
    cfg, weights = from_hf(model)
    with InProcessCluster(cfg, weights, plan) as cluster:
        out = cluster.prefill(ids, want="logits" if cfg.causal else "hidden")
    got = out.logits if cfg.causal else out.hidden
    assert got is not None
    return got


def ids_for(seed: int = 0, batch: int = 1) -> torch.Tensor:
    return torch.randint(3, 96, (batch, SEQ), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("strategy", "weights"), SPLITS, ids=lambda v: str(v))
def test_strategy_matches_hugging_face(family: str, strategy: str, weights: list[float]) -> None:
    model = tiny_model(family)
    cfg, _ = from_hf(model)
    plan = make_plan(cfg, strategy, weights)  # type: ignore[arg-type]
    ids = ids_for()

    got = run(model, plan, ids)

    assert_within_tolerance(got, reference(model, ids))


@pytest.mark.parametrize("family", FAMILIES)
def test_hybrid_with_extreme_uneven_shares_matches_hugging_face(family: str) -> None:
    """Heads 1/2/9 of 12 (whole KV groups 3/3/6 for GQA), MLP 5/20/15, sequence 5/20/12 of 37."""
    model = tiny_model(family)
    cfg, _ = from_hf(model)
    heads = (3, 3, 6) if cfg.group_size > 1 else (1, 2, 9)
    plan = validate(
        cfg,
        ParallelPlan("hmp", 3, heads=heads, mlp_columns=(5, 20, 15), seq_weights=(5.0, 20.0, 12.0)),
    )
    assert plan.seq_split(SEQ) == [5, 20, 12]
    ids = ids_for(1)

    got = run(model, plan, ids)

    assert_within_tolerance(got, reference(model, ids))


@pytest.mark.parametrize("family", ["bert", "distilbert"])
@pytest.mark.parametrize("strategy", ["hmp", "tp", "sp", "pp"])
def test_padded_batch_of_encodings_matches_hugging_face(family: str, strategy: str) -> None:
    model = tiny_model(family)
    cfg, weights = from_hf(model)
    ids = ids_for(2, batch=2)
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0  # the second sentence is shorter: right padding
    plan = make_plan(cfg, strategy, [1.0, 2.0, 3.0])  # type: ignore[arg-type]
    with torch.inference_mode():
        ref = model(input_ids=ids, attention_mask=mask).last_hidden_state

    with InProcessCluster(cfg, weights, plan) as cluster:
        got = cluster.prefill(ids, attention_mask=mask).hidden

    assert got is not None
    assert_within_tolerance(got, ref)


def test_prompt_shorter_than_the_ring_still_matches() -> None:
    model = tiny_model("llama")
    cfg, _ = from_hf(model)
    plan = make_plan(cfg, "hmp", [1.0, 1.0, 1.0])
    ids = ids_for()[:, :2]  # two tokens, three devices: the last device holds no rows

    got = run(model, plan, ids)

    assert_within_tolerance(got, reference(model, ids))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weights", [[1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 1.0, 1.0, 3.0]], ids=str)
def test_overlapped_hybrid_equals_the_plain_hybrid(family: str, weights: list[float]) -> None:
    model = tiny_model(family)
    cfg, _ = from_hf(model)
    ids = ids_for(3)
    plain = run(model, make_plan(cfg, "hmp", weights), ids)

    overlapped = run(model, make_plan(cfg, "hmp", weights, overlap=True), ids)

    torch.testing.assert_close(overlapped, plain, atol=1e-5, rtol=0)
    assert_within_tolerance(overlapped, reference(model, ids))


@pytest.mark.parametrize("wire", ["float16", "bfloat16", "int8"])
@pytest.mark.parametrize("strategy", ["hmp", "hmp+overlap", "tp", "sp", "pp"])
def test_lossy_wire_formats_stay_close(wire: str, strategy: str) -> None:
    model = tiny_model("llama")
    cfg, _ = from_hf(model)
    ids = ids_for(4)
    ref = reference(model, ids)
    overlap = strategy == "hmp+overlap"
    plan = make_plan(
        cfg,
        strategy.removesuffix("+overlap"),  # type: ignore[arg-type]
        [1.0, 2.0, 3.0],
        wire_dtype=wire,
        overlap=overlap,
    )

    got = run(model, plan, ids)

    err = float((got - ref).abs().max())
    assert 0 < err < 0.05 * max(1.0, float(ref.abs().max()))


GQA_SPLITS = [  # 12 query heads in 4 groups of 3, shares that split groups
    ("tp", (4, 4, 4)),  # every rank holds two groups, the middle ones replicated
    ("hmp", (1, 1, 10)),  # two ranks inside group 0, the last from mid-group 0 to the end
    ("hmp", (5, 2, 3, 1, 1)),  # five devices: more than the four groups
]


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize(("strategy", "heads"), GQA_SPLITS, ids=str)
@pytest.mark.parametrize("overlap", [False, True], ids=["plain", "overlap"])
def test_query_heads_that_split_kv_groups_match_hugging_face(
    family: str, strategy: str, heads: tuple[int, ...], overlap: bool
) -> None:
    """More devices than KV groups (or uneven shares): K/V of split groups are replicated."""
    model = tiny_model(family)
    cfg, _ = from_hf(model)
    n = len(heads)
    cols = tuple(40 // n + (1 if r < 40 % n else 0) for r in range(n))
    plan = validate(
        cfg,
        ParallelPlan(
            strategy,  # type: ignore[arg-type]
            n,
            heads=heads,
            mlp_columns=cols,
            seq_weights=(1.0,) * n if strategy == "hmp" else (),
            overlap=overlap and strategy == "hmp",
        ),
    )
    ids = ids_for(2)

    got = run(model, plan, ids)

    assert_within_tolerance(got, reference(model, ids))
