"""ECE, reliability bins and temperature scaling against cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from effnet.report.calibration import (
    DEFAULT_BINS,
    TEMPERATURE_BOUNDS,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability,
)


def calibrated_logits(n: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=gen) * 2.0
    targets = torch.multinomial(logits.softmax(1), 1, generator=gen).flatten()
    return logits, targets


def test_ece_by_hand() -> None:
    # float64: in float32, 0.8 * 5 is a hair above 4 and 0.8 would change bins
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
    targets = torch.tensor([0, 0, 0, 1])  # correct, wrong, correct, correct
    rel = reliability(probs, targets, n_bins=2)
    assert rel.counts == [0, 4]
    # one bin holds all: |accuracy 0.75 - mean confidence 0.75| = 0
    assert rel.ece == pytest.approx(0.0)
    # 5 bins: 0.6 in (0.4, 0.6]; 0.7 and 0.8 in (0.6, 0.8]; 0.9 in (0.8, 1]
    rel = reliability(probs, targets, n_bins=5)
    assert rel.counts == [0, 0, 1, 2, 1]
    expected = (1 * abs(1 - 0.6) + 2 * abs(0.5 - 0.75) + 1 * abs(1 - 0.9)) / 4
    assert rel.ece == pytest.approx(expected)
    assert rel.accuracy[3] == pytest.approx(0.5) and rel.confidence[3] == pytest.approx(0.75)
    assert rel.accuracy[0] is None and rel.num_samples == 4


def test_bin_edges_are_right_closed() -> None:
    # p = 0.6 with 5 bins lies in (0.4, 0.6], bin 2; p = 1.0 in the last bin
    probs = torch.tensor([[0.6, 0.4], [1.0, 0.0]], dtype=torch.float64)
    rel = reliability(probs, torch.tensor([0, 0]), n_bins=5)
    assert rel.counts == [0, 0, 1, 0, 1]
    assert len(rel.edges) == 6 and rel.edges[0] == 0 and rel.edges[-1] == 1
    assert len(reliability(probs, torch.tensor([0, 0])).counts) == DEFAULT_BINS


def test_calibrated_model_has_small_ece_and_overconfident_large() -> None:
    logits, targets = calibrated_logits(20000, 5)
    assert expected_calibration_error(logits.softmax(1), targets) < 0.015
    assert expected_calibration_error((logits * 3).softmax(1), targets) > 0.1


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_recovers_the_known_temperature(true_t: float) -> None:
    # the model reports logits / true_t: dividing by true_t again restores calibration
    logits, targets = calibrated_logits(20000, 5, seed=1)
    shown = logits / true_t
    t = fit_temperature(shown, targets)
    assert t == pytest.approx(1 / true_t, rel=0.05)
    before = expected_calibration_error(shown.softmax(1), targets)
    after = expected_calibration_error(apply_temperature(shown, t), targets)
    assert after < before / 3 and after < 0.015
    assert nll(shown, targets, t) <= nll(shown, targets)


def test_a_fit_on_seen_images_only_softens() -> None:
    """On images the model trained on, over-confidence carries over to new images, but an
    under-confidence (label smoothing on a training set it has learnt) does not."""
    logits, targets = calibrated_logits(20000, 5, seed=1)
    over, under = logits * 2, logits / 2
    assert fit_temperature(over, targets, seen=True) == pytest.approx(2.0, rel=0.05)
    assert fit_temperature(under, targets) == pytest.approx(0.5, rel=0.05)
    assert fit_temperature(under, targets, seen=True) == 1.0


def test_fit_is_deterministic_and_keeps_predictions() -> None:
    logits, targets = calibrated_logits(500, 3, seed=2)
    logits = logits * 4
    assert fit_temperature(logits, targets) == fit_temperature(logits.clone(), targets)
    t = fit_temperature(logits, targets)
    assert torch.equal(apply_temperature(logits, t).argmax(1), logits.argmax(1))


def test_degenerate_sets_leave_the_probabilities_alone() -> None:
    empty = torch.empty(0, 3)
    assert fit_temperature(empty, torch.empty(0, dtype=torch.long)) == 1.0
    assert expected_calibration_error(empty, torch.empty(0, dtype=torch.long)) == 0.0
    # too few predictions to say anything
    logits, targets = calibrated_logits(10, 3)
    assert fit_temperature(logits, targets) == 1.0
    # all correct: the NLL would keep falling as T -> 0
    logits, _ = calibrated_logits(200, 4)
    assert fit_temperature(logits, logits.argmax(1)) == 1.0
    # logits that do not depend on T (equal within each row)
    flat = torch.zeros(100, 3)
    assert fit_temperature(flat, torch.arange(100) % 3) == 1.0
    # one class in the labels: still a fit, within bounds
    logits, _ = calibrated_logits(300, 3, seed=3)
    t = fit_temperature(logits * 5, torch.zeros(300, dtype=torch.long))
    assert TEMPERATURE_BOUNDS[0] <= t <= TEMPERATURE_BOUNDS[1] and math.isfinite(t)


def test_confidently_wrong_model_hits_the_bound_not_infinity() -> None:
    logits = torch.tensor([[10.0, -10.0]] * 50)
    targets = torch.tensor([1] * 49 + [0])  # wrong 49 times out of 50
    assert fit_temperature(logits, targets) == pytest.approx(TEMPERATURE_BOUNDS[1])


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature(torch.tensor([[float("nan"), 0.0]] * 30), torch.zeros(30, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        expected_calibration_error(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="class indices"):
        expected_calibration_error(torch.full((2, 2), 0.5), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(torch.zeros(1, 2), 0.0)
