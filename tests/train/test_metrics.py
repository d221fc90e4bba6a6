"""The run report's metrics are scikit-learn's: accuracy, balanced accuracy, macro-F1 and the
per-class precision / recall / F1, on random predictions and on the degenerate cases (a class
absent from the targets, absent from everything, never predicted, one class only)."""

from __future__ import annotations

import warnings

import pytest
import torch

from effnet.train.metrics import classification_report

metrics = pytest.importorskip("sklearn.metrics")

CASES = {
    # a class predicted but absent from the targets: where macro-F1 used to differ
    "predicted, not in targets": ([0, 0, 1, 1, 1, 3], [0, 2, 1, 1, 0, 3], 4),
    "absent from targets and predictions": ([0, 1, 1, 2], [0, 1, 2, 2], 5),
    "never predicted": ([0, 1, 2, 2, 2], [0, 1, 1, 1, 0], 3),
    "all wrong": ([0, 0, 1], [1, 1, 0], 2),
    "one class": ([1, 1, 1], [1, 1, 1], 3),
}


def sklearn_report(y: list[int], p: list[int]) -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the undefined ratios it zeroes
        return {
            "accuracy": metrics.accuracy_score(y, p),
            "balanced_accuracy": metrics.balanced_accuracy_score(y, p),
            "macro_f1": metrics.f1_score(y, p, average="macro", zero_division=0),
        }


def check(y: list[int], p: list[int], n: int) -> None:
    ours = classification_report(torch.tensor(y), torch.tensor(p), [f"c{i}" for i in range(n)])
    for key, value in sklearn_report(y, p).items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y, p, labels=list(range(n)), zero_division=0
    )
    for i in range(n):
        row = ours["per_class"][f"c{i}"]
        assert row["precision"] == pytest.approx(precision[i], abs=1e-12)
        assert row["recall"] == pytest.approx(recall[i], abs=1e-12)
        assert row["f1"] == pytest.approx(f1[i], abs=1e-12)
        assert row["support"] == support[i]
    expected = metrics.confusion_matrix(y, p, labels=list(range(n)))
    assert ours["confusion_matrix"] == expected.tolist()


@pytest.mark.parametrize("case", CASES)
def test_degenerate_cases_agree_with_scikit_learn(case: str) -> None:
    check(*CASES[case])


def test_the_issue_case_macro_f1_counts_a_predicted_absent_class_as_zero() -> None:
    y, p, _ = CASES["predicted, not in targets"]
    report = classification_report(torch.tensor(y), torch.tensor(p), list("abcd"))
    assert report["per_class"]["c"]["f1"] == 0.0 and report["per_class"]["c"]["support"] == 0
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0 + 1.0) / 4)


@pytest.mark.parametrize("seed", range(20))
def test_random_predictions_agree_with_scikit_learn(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 8, (1,), generator=g))
    size = int(torch.randint(1, 60, (1,), generator=g))
    y = torch.randint(0, n, (size,), generator=g).tolist()
    p = torch.randint(0, n, (size,), generator=g).tolist()
    check(y, p, n)
