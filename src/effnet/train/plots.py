"""PNG plots of a run: learning curves and the confusion matrix (matplotlib's object API)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from effnet.plotting import new_figure, save_figure

__all__ = ["plot_confusion", "plot_curves"]


def plot_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss and accuracy per epoch for train and val, both phases on one time axis."""
    fig = new_figure((10, 3.8))
    ax_loss, ax_acc = fig.subplots(1, 2)
    x = list(range(1, len(history) + 1))
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        ys = [row.get(key) for row in history]
        if any(y is not None for y in ys):
            ax_loss.plot(x, ys, style, label=key.replace("_", " "), markersize=3)
    for key, style in (("train_acc", "-o"), ("val_acc", "-s")):
        ys = [row.get(key) for row in history]
        if any(y is not None for y in ys):
            ax_acc.plot(x, ys, style, label=key.replace("_", " "), markersize=3)
    head_epochs = sum(1 for row in history if row.get("phase") == "head")
    for ax in (ax_loss, ax_acc):
        if 0 < head_epochs < len(history):
            ax.axvline(head_epochs + 0.5, color="grey", linestyle=":", linewidth=1)
            ax.text(
                head_epochs + 0.6,
                ax.get_ylim()[1],
                " full fine-tuning",
                va="top",
                fontsize=8,
                color="grey",
            )
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    return save_figure(fig, path, dpi=110)


def plot_confusion(
    matrix: Sequence[Sequence[int]],
    classes: Sequence[str],
    path: str | Path,
    title: str = "test confusion matrix",
) -> Path:
    """Counts with row-normalised colour (recall per true class)."""
    n = len(classes)
    fig = new_figure((1.2 * n + 2.5, 1.0 * n + 2))
    ax = fig.subplots()
    rows = [sum(r) or 1 for r in matrix]
    norm = [[v / rows[i] for v in r] for i, r in enumerate(matrix)]
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(matrix[i][j]),
                ha="center",
                va="center",
                color="white" if norm[i][j] > 0.6 else "black",
            )
    ax.set_xticks(range(n), classes, rotation=30, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_figure(fig, path, dpi=110)
