"""Summaries: aggregation over seeds, the noise estimate, and the compound-vs-rest verdict."""

from __future__ import annotations

import math

import pytest

from effnet.lab.compare import Verdict, _verdicts
from effnet.lab.experiment import aggregate, macs_unit, standard_error


def _result(strategy: str, target: float, seed: int, acc: float) -> dict:
    return {
        "status": "ok",
        "strategy": strategy,
        "target": target,
        "seed": seed,
        "val_acc": acc,
        "test_acc": acc - 0.01,
        "macs": int(1e6 * target),
        "val_images": 400,
        "latency_ms": 1.0 + seed,
        "wall_s": 10.0,
    }


def test_aggregate_means_spreads_and_skips_failed_trials():
    results = [_result("width", 2.0, 0, 0.80), _result("width", 2.0, 1, 0.84)]
    results.append({**_result("width", 2.0, 2, 0.10), "status": "failed"})
    row = aggregate(results, lambda r: (r["strategy"], r["target"]))[("width", 2.0)]
    assert row["seeds"] == [0, 1] and row["val_accs"] == [0.80, 0.84]
    assert row["val_acc_mean"] == pytest.approx(0.82)
    assert row["val_acc_std"] == pytest.approx(math.sqrt(2) * 0.02)
    assert (row["val_acc_min"], row["val_acc_max"]) == (0.80, 0.84)
    assert row["test_acc_mean"] == pytest.approx(0.81)
    assert row["latency_ms"] == 1.5 and row["wall_s"] == 20.0


def test_standard_error_adds_seed_spread_to_the_validation_set_size():
    one_seed = {"val_acc_mean": 0.8, "val_images": 400, "seeds": [0], "val_acc_std": None}
    assert standard_error(one_seed) == pytest.approx(0.02)  # sqrt(0.8 * 0.2 / 400)
    two = {**one_seed, "seeds": [0, 1], "val_acc_std": 0.03}
    assert standard_error(two) == pytest.approx(math.sqrt(0.02**2 + 0.03**2 / 2))


def test_verdicts_compare_compound_with_the_best_one_dimensional_strategy():
    results = [_result("base", 1.0, 0, 0.70)]
    for strategy, acc in (("depth", 0.70), ("width", 0.74), ("compound", 0.90)):
        results.append(_result(strategy, 2.0, 0, acc))
    for strategy, acc in (("depth", 0.80), ("compound", 0.81)):
        results.append(_result(strategy, 4.0, 0, acc))
    points = list(aggregate(results, lambda r: (r["strategy"], r["target"])).values())
    two, four = _verdicts(points)
    assert (two.target, two.best_other, two.outcome) == (2.0, "width", "compound won")
    assert two.margin == pytest.approx(0.16)
    assert four.outcome == "within noise"  # 1 point on 400 images
    assert "margin +16.0 points" in two.describe()


def test_a_loss_beyond_the_noise_names_the_winner():
    verdict = Verdict(2.0, 0.70, "width", 0.80, -0.10, 0.01)
    assert verdict.outcome == "width won"
    assert Verdict(2.0, 0.8, "depth", 0.8, 0.0, None).outcome == "within noise"


def _points(accs: dict[str, float], target: float = 2.0) -> list[dict]:
    results = [_result("base", 1.0, 0, 0.70)]
    results += [_result(strategy, target, 0, acc) for strategy, acc in accs.items()]
    return list(aggregate(results, lambda r: (r["strategy"], r["target"])).values())


def test_one_dimensional_strategies_tied_at_the_top_are_all_named():
    (verdict,) = _verdicts(
        _points({"depth": 0.74, "width": 0.80, "resolution": 0.80, "compound": 0.70})
    )
    assert verdict.best_other == "width/resolution" and verdict.best_other_acc == 0.80
    assert verdict.margin == pytest.approx(-0.10)
    assert verdict.outcome == "width/resolution won"  # 10 points on 400 images: beyond noise
    assert "(width/resolution)" in verdict.describe()


def test_compound_tied_with_the_best_one_dimensional_is_no_win_even_without_noise():
    (verdict,) = _verdicts(_points({"depth": 0.8, "width": 0.8, "compound": 0.8}))
    assert verdict.best_other == "depth/width" and verdict.margin == 0.0
    assert verdict.outcome == "within noise"
    # no validation-set size and one seed: no noise estimate, yet a tie still wins nothing
    assert Verdict(2.0, 0.3 + 0.6, "depth", 0.9, (0.3 + 0.6) - 0.9, None).outcome == "within noise"
    assert Verdict(2.0, 0.91, "depth", 0.9, 0.01, None).outcome == "compound won"


def test_macs_are_shown_in_mmacs_below_one_gmac_and_in_gmacs_above():
    assert macs_unit([3.7e6, 14.5e6]) == (1e6, "MMACs")
    assert macs_unit([0.39e9, 1.8e9]) == (1e9, "GMACs")
    assert macs_unit([None, 5e6]) == (1e6, "MMACs")
