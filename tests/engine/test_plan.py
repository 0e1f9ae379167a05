"""Plan arithmetic and the refusal of impossible plans, before any compute."""

from __future__ import annotations

import pytest

from edge_worker.errors import PlanError
from edge_worker.spec.plan import (
    ParallelPlan,
    kv_heads,
    kv_owned,
    kv_range,
    make_plan,
    split_by_weights,
    validate,
    whole_groups,
)
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


def test_more_devices_than_kv_groups_split_query_heads() -> None:
    plan = make_plan(gqa_config(), "hmp", [1.0] * 5)  # 12 heads in 4 groups of 3

    assert plan.heads == (3, 3, 2, 2, 2)
    assert kv_heads(gqa_config(), plan) == (1, 1, 1, 2, 1)  # heads 8-9: groups 2 and 3


def test_more_devices_than_query_heads_is_refused_for_tensor_parallelism() -> None:
    with pytest.raises(PlanError, match=r"only 12 attention heads.*at most 12 devices"):
        make_plan(gqa_config(), "tp", [1.0] * 13)


def test_heads_that_split_a_kv_group_are_a_valid_plan() -> None:
    plan = ParallelPlan("tp", 2, heads=(4, 8), mlp_columns=(20, 20))

    assert validate(gqa_config(), plan) == plan


def test_a_split_group_is_projected_on_every_device_that_needs_it() -> None:
    cfg = gqa_config()  # groups of 3
    plan = ParallelPlan("tp", 3, heads=(4, 4, 4), mlp_columns=(10, 10, 20))

    assert [kv_range(cfg, r) for r in (range(0, 4), range(4, 8), range(8, 12))] == [
        range(0, 2),
        range(1, 3),
        range(2, 4),
    ]
    assert kv_heads(cfg, plan) == (2, 2, 2)


def test_gathered_kv_heads_come_once_each_from_their_first_holder() -> None:
    plan = ParallelPlan("tp", 3, heads=(4, 4, 4), mlp_columns=(10, 10, 20))

    assert kv_owned(gqa_config(), plan) == [range(0, 2), range(2, 3), range(3, 4)]


def test_a_device_inside_a_group_its_neighbour_started_owns_no_kv_head() -> None:
    plan = ParallelPlan("tp", 3, heads=(1, 1, 10), mlp_columns=(10, 10, 20))

    assert kv_owned(gqa_config(), plan) == [range(0, 1), range(1, 1), range(1, 4)]


def test_fewer_devices_than_groups_still_split_by_whole_groups() -> None:
    assert whole_groups(gqa_config(), make_plan(gqa_config(), "tp", [1.0, 1.0, 1.0]).heads)


def test_pipeline_layers_must_cover_the_model() -> None:
    plan = ParallelPlan("pp", 2, layers=(1, 1))

    with pytest.raises(PlanError, match=r"layers split .* sums to 2, but the model has 4"):
        validate(mha_config(), plan)


def test_local_runs_on_exactly_one_device() -> None:
    with pytest.raises(PlanError, match="one device"):
        make_plan(mha_config(), "local", [1.0, 1.0])
