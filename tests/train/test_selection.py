"""Which epoch a run keeps: the best validation score, unless a later epoch is within the
score's standard error of it (then the later one); early stopping counts only new bests."""

from __future__ import annotations

import math

import pytest
import torch

from effnet.train.checkpoint import RunState
from effnet.train.metrics import classification_report
from effnet.train.run import selection_margin


def rows(scores: list[float], margin: float) -> tuple[RunState, list[bool]]:
    state = RunState()
    picked = [
        state.record({"phase": "full", "epoch": i + 1}, s, margin) for i, s in enumerate(scores)
    ]
    return state, picked


def test_a_later_epoch_within_the_noise_of_the_best_is_kept() -> None:
    # the demo's case: balanced accuracy 0.58 at epoch 2, 0.573 at the end, +- 0.035 by chance
    state, picked = rows([0.50, 0.582, 0.545, 0.556, 0.573], margin=0.035)
    assert state.best_epoch == "full 5" and state.best_score == pytest.approx(0.582)
    assert picked == [True, True, False, True, True]
    assert state.stale_epochs == 3  # no new best after epoch 2: early stopping sees that


def test_without_a_margin_the_best_epoch_is_the_strict_best() -> None:
    state, picked = rows([0.50, 0.582, 0.545, 0.556, 0.573], margin=0.0)
    assert state.best_epoch == "full 2" and picked == [True, True, False, False, False]


def test_an_epoch_clearly_worse_than_the_best_is_not_kept() -> None:
    state, _ = rows([0.90, 0.80, 0.82], margin=0.01)
    assert state.best_epoch == "full 1"


def test_no_score_selects_nothing() -> None:
    state = RunState()
    assert not state.record({"phase": "full", "epoch": 1}, None) and state.best_epoch == ""


def test_the_margin_is_the_standard_error_of_the_score() -> None:
    targets = torch.tensor([0] * 80 + [1] * 20)
    preds = torch.cat([torch.zeros(72), torch.ones(8), torch.ones(15), torch.zeros(5)]).long()
    report = classification_report(targets, preds, ["a", "b"])
    acc = 87 / 100
    assert selection_margin("accuracy", report) == pytest.approx(math.sqrt(acc * (1 - acc) / 100))
    balanced = math.sqrt(0.9 * 0.1 / 80 + 0.75 * 0.25 / 20) / 2
    assert selection_margin("balanced_accuracy", report) == pytest.approx(balanced)
    assert selection_margin("macro_f1", report) == pytest.approx(balanced)
    assert selection_margin("loss", report) == 0.0
    # the rarest class dominates: ten images of it make balanced accuracy move by points
    assert selection_margin("balanced_accuracy", report) > selection_margin("accuracy", report)
