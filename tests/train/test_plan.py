"""The plan of a run (effnet.train.plan): sizes from the pictures, epochs from the budget and this
machine's measured speed, the user's settings kept, the recipe from the data; and a run that
plans, saves its plan and adapts its length to the budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from effnet.errors import ConfigError
from effnet.train import FinetuneConfig, finetune
from effnet.train.plan import (
    MAX_EPOCHS,
    SAFETY,
    DataProfile,
    Speed,
    adapted_epochs,
    candidate_sizes,
    interpolate,
    make_plan,
    measure_speed,
    needs_plan,
    parse_duration,
    trimmed_epochs,
)
from helpers.finetune import tiny_config
from helpers.images import make_folder

pytestmark = pytest.mark.filterwarnings("ignore:skipping")

# A made-up machine: 200 train img/s and 1,000 eval img/s at 64 px, 8x slower per image at 224.
SPEEDS = {64: Speed(64, 200.0, 1000.0), 224: Speed(224, 200.0 / 8, 1000.0 / 8)}


def profile(native: int = 300, counts: tuple[int, ...] = (500, 500), gray: bool = False):
    n = sum(counts)
    return DataProfile(int(0.7 * n), int(0.15 * n), int(0.15 * n), counts, native, gray)


ELPV = DataProfile(1968, 0, 656, (1131, 221, 80, 536), 300, True)
MEASURED = {64: Speed(64, 200.0, 1500.0), 128: Speed(128, 60.0, 400.0), 224: Speed(224, 22, 150)}


def test_interpolation_is_exact_at_measured_sizes_and_monotone_between() -> None:
    assert interpolate(MEASURED, 128) == MEASURED[128]
    mid = interpolate(MEASURED, 160)
    assert MEASURED[224].train < mid.train < MEASURED[128].train
    assert interpolate({128: MEASURED[128]}, 256).train == pytest.approx(15.0)  # pixels x4


@pytest.mark.parametrize("budget", [120.0, 300.0, 600.0, 1800.0])
def test_a_plan_fits_its_budget(budget: float) -> None:
    plan = make_plan("tf_efficientnet_lite0", ELPV, MEASURED, 224, budget_seconds=budget)
    assert plan.estimated_seconds <= budget
    assert plan.epochs >= 1
    longer = make_plan("tf_efficientnet_lite0", ELPV, MEASURED, 224, budget_seconds=budget * 2)
    assert (longer.image_size, longer.epochs) >= (plan.image_size, plan.epochs)


def test_no_budget_is_the_default_plan_printed_the_same_way() -> None:
    plan = make_plan("tf_efficientnet_lite0", ELPV, MEASURED, 224)
    assert plan.epochs == 10 and plan.image_size == 224 and plan.budget_seconds is None
    text = plan.describe()
    assert text.startswith("plan (no time budget") and "expected" in text


def test_measuring_speed_takes_seconds_and_orders_sizes() -> None:
    speeds = measure_speed("tf_efficientnet_lite0", [32, 64], batch=4, steps=1)
    assert sorted(speeds) == [32, 64]  # no timing asserts: speeds live in benchmarks/
    assert all(s.train > 0 and s.infer > 0 for s in speeds.values())


def test_durations() -> None:
    assert parse_duration("10m") == 600 and parse_duration("1h30m") == 5400
    assert parse_duration("90s") == parse_duration("90") == parse_duration(90) == 90
    for bad in ("soon", "", "-5m", "0"):
        with pytest.raises(ConfigError, match="time budget"):
            parse_duration(bad)


def test_sizes_follow_the_pictures_and_the_weights() -> None:
    assert candidate_sizes(8, 224) == [64]  # 8 px digits: upsampled, not to 224
    assert candidate_sizes(40, 224) == [64]
    assert candidate_sizes(60, 224) == [64, 96, 128]
    assert candidate_sizes(300, 224) == [64, 96, 128, 160, 192, 224]  # never past the weights'
    assert candidate_sizes(300, 260)[-1] == 256


def test_more_budget_buys_a_larger_size_then_more_epochs() -> None:
    plans = [
        make_plan("m", profile(), SPEEDS, 224, budget_seconds=b) for b in (120, 600, 3600, 36000)
    ]
    sizes = [p.image_size for p in plans]
    assert sizes == sorted(sizes) and sizes[0] < 224 == sizes[-1]
    assert plans[-1].epochs == MAX_EPOCHS
    for plan in plans:
        assert plan.epochs >= 1
        if plan.epochs < MAX_EPOCHS:  # what fits fills the budget, within its safety margin
            assert plan.estimated_seconds <= plan.budget_seconds * SAFETY
            assert plan.estimated_seconds >= 0.6 * plan.budget_seconds * SAFETY


def test_the_users_settings_are_kept() -> None:
    pinned = {"image_size": 96, "epochs": 3, "lr": 3e-4, "augment": "light", "balance": "none"}
    plan = make_plan("m", profile(counts=(900, 100)), SPEEDS, 224, budget_seconds=60,
                     pinned=pinned)  # fmt: skip
    assert (plan.image_size, plan.epochs, plan.lr, plan.augment) == (96, 3, 3e-4, "light")
    assert plan.balance == "none" and plan.select_by == "balanced_accuracy"
    assert plan.progressive is None  # the user sized the run: no schedule is added
    # the reasons give only what was planned: the pinned loss is not explained as planned
    why = " ".join(plan.reasons)
    assert "logit-adjusted" not in why and "9.0:1" in why and "balanced accuracy" in why


def test_the_recipe_follows_the_data() -> None:
    balanced = make_plan("m", profile(native=28, gray=True), {}, 224)
    assert (balanced.balance, balanced.select_by, balanced.augment) == ("none", "accuracy", "none")
    assert balanced.image_size == 64 and balanced.crop_pct == 1.0 and balanced.lr == 1e-3
    assert any("grayscale" in r for r in balanced.reasons)
    skewed = make_plan("m", profile(counts=(1500, 300, 100)), {}, 224)
    assert (skewed.balance, skewed.select_by) == ("logit", "balanced_accuracy")
    assert any("15.0:1" in r for r in skewed.reasons)
    long = make_plan("m", profile(), SPEEDS, 224, budget_seconds=20_000)
    assert long.progressive is not None and long.progressive.endswith(":224")


def test_the_length_adapts_to_the_first_epochs_measured_time() -> None:
    plan = make_plan("m", profile(native=64), SPEEDS, 224, budget_seconds=150)
    assert 3 < plan.epochs < MAX_EPOCHS // 2
    config = FinetuneConfig(image_size=plan.image_size, epochs=plan.epochs, lr=1e-3)
    first = plan.estimate["train"] / plan.epochs
    elapsed = plan.estimated_seconds - plan.estimate["train"] + first - 25  # report, test after
    assert adapted_epochs(plan, config, elapsed, first) in (plan.epochs - 1, plan.epochs,
                                                            plan.epochs + 1)  # fmt: skip
    assert adapted_epochs(plan, config, elapsed, 2 * first) < plan.epochs  # a slower machine
    assert adapted_epochs(plan, config, elapsed, first / 2) > plan.epochs  # a faster one


def test_what_is_planned() -> None:
    assert needs_plan(FinetuneConfig())
    pinned = dict(image_size=64, epochs=2, lr=1e-3, crop_pct=1.0, augment="none",
                  balance="none", select_by="accuracy", amp="none")  # fmt: skip
    assert not needs_plan(FinetuneConfig(**pinned))
    assert needs_plan(FinetuneConfig(**pinned, time_budget="5m"))


def test_a_run_with_a_budget_plans_saves_and_reports_its_passes(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", per_class=10, size=30)
    config = tiny_config(data, tmp_path / "run", image_size=None, epochs=None, time_budget="15s",
                         head_epochs=1)  # fmt: skip
    result = finetune(config)
    plan = json.loads((result.run_dir / "plan.json").read_text())
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert plan["image_size"] == saved["image_size"] == 64  # 30 px pictures
    assert saved["epochs"] >= 1 and saved["lr"] == 1e-3 and saved["augment"] == "none"
    assert plan["speeds"] and plan["reasons"] and plan["budget_seconds"] == 15
    assert len([r for r in result.history if r["phase"] == "full"]) == saved["epochs"]
    for key in ("scan", "plan", "bn_recalibrate", "features", "head", "full", "test",
                "calibration", "report", "wall"):  # fmt: skip
        assert f"{key}_seconds" in result.timings, key
    assert result.report["selected_by"] == "accuracy"


def test_epochs_that_slow_down_mid_run_shorten_it_and_never_lengthen_it() -> None:
    """A 5-minute digits run re-planned to 40 epochs after a fast first one, then its epochs
    took 8-10 s instead of 7 and it ended at 1.16x the budget."""
    plan = make_plan("m", profile(native=64), SPEEDS, 224, budget_seconds=300)
    config = FinetuneConfig(image_size=plan.image_size, epochs=plan.epochs, lr=1e-3)
    per_epoch = plan.estimate["train"] / plan.epochs
    done = plan.epochs // 2
    on_time = plan.estimated_seconds - plan.estimate["train"] + done * per_epoch
    recent = [(e, per_epoch) for e in range(done - 3, done)]
    assert trimmed_epochs(plan, config, on_time, done, recent) == plan.epochs  # as planned
    fast = [(e, per_epoch / 2) for e, _ in recent]
    assert trimmed_epochs(plan, config, on_time, done, fast) == plan.epochs  # never longer
    slow = [(e, 1.5 * per_epoch) for e, _ in recent]
    late = on_time + done * per_epoch * 0.5
    trimmed = trimmed_epochs(plan, config, late, done, slow)
    assert done < trimmed < plan.epochs
    rest = (trimmed - done) * 1.5 * per_epoch
    assert late + rest <= plan.budget_seconds  # the rest fits at the slower speed
    one_more = FinetuneConfig(image_size=plan.image_size, epochs=trimmed + 1, lr=1e-3)
    assert trimmed_epochs(plan, one_more, late, done, slow) == trimmed  # no epoch more would
    hopeless = [(e, 100 * per_epoch) for e, _ in recent]
    assert trimmed_epochs(plan, config, late, done, hopeless) == done + 1


def test_a_budget_changes_the_length_and_a_resume_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import effnet.train.phases as phases

    data = make_folder(tmp_path / "data", per_class=10, size=30)
    monkeypatch.setattr(phases, "adapted_epochs", lambda plan, config, elapsed, first: 3)
    monkeypatch.setattr(phases, "trimmed_epochs", lambda plan, config, *_: config.epochs)
    config = tiny_config(data, tmp_path / "run", epochs=2, time_budget="1h", head_epochs=0)
    result = finetune(config)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    lrs = [r["lr"] for r in result.history]
    assert lrs[-1] < lrs[1] < lrs[0]  # the cosine decay spans the new length
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["epochs"] == 3
