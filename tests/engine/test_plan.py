"""Plan arithmetic and the refusal of impossible plans, before any compute."""

from __future__ import annotations

import pytest

from edge_worker.errors import PlanError
from edge_worker.spec.plan import ParallelPlan, make_plan, split_by_weights, validate
from tests.engine.configs import gqa_config, mha_config


def test_largest_remainder_split_is_proportional() -> None:
    assert split_by_weights(37, [5, 20, 12]) == [5, 20, 12]
    assert split_by_weights(12, [1, 2, 3]) == [2, 4, 6]
    assert split_by_weights(10, [1, 1, 1]) == [4, 3, 3]


def test_every_device_gets_at_least_one_unit() -> None:
    assert split_by_weights(12, [1, 100, 100]) == [1, 5, 6]


def test_split_refuses_more_devices_than_units() -> None:
    with pytest.raises(PlanError, match="at least 1 of 2 units"):
        split_by_weights(2, [1, 1, 1])


def test_gqa_heads_split_by_whole_groups() -> None:
    plan = make_plan(gqa_config(), "hmp", [1.0, 2.0, 3.0])  # 12 heads in 4 groups of 3

    assert plan.heads == (3, 3, 6)
    assert sum(plan.mlp_columns) == 40


def test_uneven_sequence_split_follows_the_weights() -> None:
    plan = make_plan(mha_config(), "hmp", [5.0, 20.0, 12.0])

    assert plan.seq_split(37) == [5, 20, 12]
    assert plan.seq_split(2) == [1, 1, 0]


def test_heads_that_do_not_sum_to_the_model_are_refused() -> None:
    plan = ParallelPlan("hmp", 3, heads=(1, 2, 8), mlp_columns=(10, 10, 20), seq_weights=(1, 1, 1))

    with pytest.raises(
        PlanError, match=r"heads split \[1, 2, 8\] sums to 11, but the model has 12"
    ):
        validate(mha_config(), plan)


def test_mlp_columns_that_do_not_sum_are_refused() -> None:
    plan = ParallelPlan("tp", 2, heads=(6, 6), mlp_columns=(10, 10))

    with pytest.raises(PlanError, match=r"MLP columns split .* sums to 20, but the model has 40"):
        validate(mha_config(), plan)


def test_an_empty_share_is_refused() -> None:
    plan = ParallelPlan("hmp", 3, heads=(0, 6, 6), mlp_columns=(10, 10, 20), seq_weights=(1, 1, 1))

    with pytest.raises(PlanError, match="leaves a device with no work"):
        validate(mha_config(), plan)


def test_an_empty_sequence_share_is_refused() -> None:
    plan = ParallelPlan("sp", 2, seq_weights=(1.0, 0.0))

    with pytest.raises(PlanError, match="positive sequence share"):
        validate(mha_config(), plan)


def test_more_devices_than_kv_groups_is_refused_for_tensor_parallelism() -> None:
    with pytest.raises(PlanError, match=r"only 4 key/value head groups.*at most 4 devices"):
        make_plan(gqa_config(), "hmp", [1.0] * 5)


def test_heads_that_split_a_kv_group_are_refused() -> None:
    plan = ParallelPlan("tp", 2, heads=(4, 8), mlp_columns=(20, 20))

    with pytest.raises(PlanError, match="not a whole number of key/value groups of 3"):
        validate(gqa_config(), plan)


def test_pipeline_layers_must_cover_the_model() -> None:
    plan = ParallelPlan("pp", 2, layers=(1, 1))

    with pytest.raises(PlanError, match=r"layers split .* sums to 2, but the model has 4"):
        validate(mha_config(), plan)


def test_local_runs_on_exactly_one_device() -> None:
    with pytest.raises(PlanError, match="one device"):
        make_plan(mha_config(), "local", [1.0, 1.0])
