"""Classification metrics from a confusion matrix: accuracy, balanced accuracy, macro-F1,
per-class precision, recall and F1.

The definitions are scikit-learn's (``tests/train/test_metrics.py`` checks them against
``sklearn.metrics`` on random and degenerate cases), computed here with a few tensor operations
rather than importing scikit-learn at run time: the report needs five sums of one confusion
matrix, and scikit-learn would be a large dependency for them.

* ``macro_f1`` = ``f1_score(y, pred, average="macro")``: the mean F1 over the classes that occur
  in the targets *or* the predictions. A class that is predicted but absent from the targets
  counts with F1 0 (torchmetrics' macro F1 agrees); a class absent from both is left out (its F1
  is 0/0).
* ``balanced_accuracy`` = ``balanced_accuracy_score``: the mean recall over the classes present
  in the targets.
* per class: precision, recall and F1 with ``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["classification_report", "confusion_matrix"]


def confusion_matrix(targets: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """counts[i, j] = samples of true class i predicted as class j."""
    index = targets.long() * num_classes + preds.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def _safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b, and 0 where b is 0 (scikit-learn's ``zero_division=0``)."""
    return torch.where(b > 0, a / b.clamp(min=1), torch.zeros_like(a, dtype=torch.float64))


def classification_report(
    targets: torch.Tensor, preds: torch.Tensor, classes: Sequence[str]
) -> dict[str, Any]:
    """A JSON-ready report; the averages are scikit-learn's (see the module docstring)."""
    n = len(classes)
    cm = confusion_matrix(targets, preds, n).to(torch.float64)
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, support + predicted)  # = 2PR / (P + R), and 0 when tp = 0
    in_targets = support > 0
    seen = in_targets | (predicted > 0)
    total = float(cm.sum())
    return {
        "num_samples": int(total),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "balanced_accuracy": float(recall[in_targets].mean()) if in_targets.any() else 0.0,
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "classes": list(classes),
        "confusion_matrix": cm.long().tolist(),
    }
