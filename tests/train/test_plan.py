"""The run planner: durations, size ladders, speed interpolation, and plans that fit budgets."""

from __future__ import annotations

import pytest

from effnet.errors import ConfigError
from effnet.train.plan import (
    DataProfile,
    Speed,
    candidate_sizes,
    interpolate,
    make_plan,
    measure_speed,
    parse_duration,
)

ELPV = DataProfile(1968, 0, 656, (1131, 221, 80, 536), 300, True)
DIGITS = DataProfile(1300, 250, 250, (130,) * 10, 8, True)
SPEEDS = {64: Speed(64, 200.0, 1500.0), 128: Speed(128, 60.0, 400.0), 224: Speed(224, 22.0, 150.0)}


def test_durations() -> None:
    assert parse_duration("10m") == 600 and parse_duration("90s") == 90
    assert parse_duration("1h30m") == 5400 and parse_duration("1.5h") == 5400
    assert parse_duration(42) == 42
    for bad in ("", "ten minutes", "0m", "-5", float("inf"), "5x"):
        with pytest.raises(ConfigError, match="time budget"):
            parse_duration(bad)


def test_sizes_follow_the_pictures_and_the_weights() -> None:
    assert candidate_sizes(300, 224) == [64, 96, 128, 160, 192, 224]
    assert candidate_sizes(28, 224) == [64]  # small pictures: upsampled to 64, not to 224
    assert candidate_sizes(8, 224) == [64]
    assert candidate_sizes(100, 224) == [64, 96, 128, 160, 192]


def test_interpolation_is_exact_at_measured_sizes_and_monotone_between() -> None:
    assert interpolate(SPEEDS, 128) == SPEEDS[128]
    mid = interpolate(SPEEDS, 160)
    assert SPEEDS[224].train < mid.train < SPEEDS[128].train
    assert interpolate({128: SPEEDS[128]}, 256).train == pytest.approx(15.0)  # pixels x4


@pytest.mark.parametrize("budget", [120.0, 300.0, 600.0, 1800.0])
def test_a_plan_fits_its_budget(budget: float) -> None:
    plan = make_plan("tf_efficientnet_lite0", ELPV, SPEEDS, 224, budget_seconds=budget)
    assert plan.estimated_seconds <= budget
    assert plan.epochs >= 1
    longer = make_plan("tf_efficientnet_lite0", ELPV, SPEEDS, 224, budget_seconds=budget * 2)
    assert (longer.image_size, longer.epochs) >= (plan.image_size, plan.epochs)


def test_unbalanced_classes_switch_on_weights_and_balanced_selection() -> None:
    plan = make_plan("m", ELPV, SPEEDS, 224, budget_seconds=600)
    assert plan.balance == "loss" and plan.select_by == "balanced_accuracy"
    plan = make_plan("m", DIGITS, SPEEDS, 224, budget_seconds=600)
    assert plan.balance == "none" and plan.select_by == "accuracy"
    assert plan.image_size == 64  # 8 px digits are not blown up to 224
    assert any("8px" in r for r in plan.reasons)


def test_no_budget_is_the_default_plan_printed_the_same_way() -> None:
    plan = make_plan("tf_efficientnet_lite0", ELPV, SPEEDS, 224)
    assert plan.epochs == 10 and plan.image_size == 224 and plan.budget_seconds is None
    text = plan.describe()
    assert text.startswith("plan (no time budget") and "expected" in text


def test_measuring_speed_takes_seconds_and_orders_sizes() -> None:
    speeds = measure_speed("tf_efficientnet_lite0", [32, 64], batch=4, steps=1)
    assert sorted(speeds) == [32, 64]  # no timing asserts: speeds live in benchmarks/
    assert all(s.train > 0 and s.infer > 0 for s in speeds.values())
