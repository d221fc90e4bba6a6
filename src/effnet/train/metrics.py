"""Classification metrics from a confusion matrix: accuracy, balanced accuracy, macro-F1,
per-class precision and recall. Pure tensor math, no extra dependencies."""

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
    return torch.where(b > 0, a / b.clamp(min=1), torch.zeros_like(a, dtype=torch.float64))


def classification_report(
    targets: torch.Tensor, preds: torch.Tensor, classes: Sequence[str]
) -> dict[str, Any]:
    """A JSON-ready report. Balanced accuracy and macro averages skip classes absent from the
    targets (their recall is undefined), as scikit-learn does for balanced accuracy."""
    n = len(classes)
    cm = confusion_matrix(targets, preds, n).to(torch.float64)
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = support > 0
    total = float(cm.sum())
    return {
        "num_samples": int(total),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
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
