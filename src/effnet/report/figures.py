"""The report's plots as PNG bytes: learning curves, confusion matrices, reliability diagrams.

matplotlib's object API only (:func:`effnet.plotting.new_figure`: a ``Figure`` on its own Agg
canvas): no ``pyplot``, no backend switch, no global state, so drawing a report never changes a
caller's matplotlib setup.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from effnet.report.calibration import Reliability

__all__ = ["confusion_figure", "curves_figure", "png_bytes", "reliability_figure"]

_DPI = 100


def _figure(width: float, height: float) -> Any:
    from effnet.plotting import new_figure

    fig = new_figure((width, height), dpi=_DPI)
    fig.set_layout_engine("constrained")  # room for the labels without tight_layout's warnings
    return fig


def png_bytes(fig: Any) -> bytes:
    """Render ``fig`` to PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def curves_figure(history: Sequence[dict[str, Any]]) -> Any:
    """Loss and accuracy per epoch (train and validation), both phases on one axis."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(10, 3.4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    x = list(range(1, len(history) + 1))
    for ax, keys in ((ax_loss, ("train_loss", "val_loss")), (ax_acc, ("train_acc", "val_acc"))):
        for key, marker in zip(keys, ("o", "s")):
            ys = [row.get(key) for row in history]
            if any(y is not None for y in ys):
                points = [(i, y) for i, y in zip(x, ys) if y is not None]
                ax.plot(*zip(*points), marker=marker, markersize=3, label=key.replace("_", " "))
        head = sum(1 for row in history if row.get("phase") == "head")
        if 0 < head < len(history):
            ax.axvline(head + 0.5, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                "full fine-tuning",
                (head + 0.6, 0.02),
                xycoords=("data", "axes fraction"),
                va="bottom",
                fontsize=8,
                color="grey",
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="best")
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    return fig


def confusion_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> Any:
    """Two panels: counts, and rows normalised to 1 (each row's diagonal is that class's
    recall). Rows are true classes, columns predicted ones."""
    n = len(classes)
    side = min(6.0, 0.5 * n + 1.9)
    fig = _figure(2 * side + 0.8, side)
    ax_counts, ax_norm = fig.subplots(1, 2)
    rows = [sum(r) for r in matrix]
    norm = [[v / rows[i] if rows[i] else 0.0 for v in r] for i, r in enumerate(matrix)]
    peak = max((max(r) for r in matrix), default=0) or 1
    annotate = n <= 20
    for ax, values, title, vmax in (
        (ax_counts, matrix, "counts", peak),
        (ax_norm, norm, "row-normalised (recall on the diagonal)", 1.0),
    ):
        ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
        if annotate:
            for i in range(n):
                for j in range(n):
                    v = values[i][j]
                    text = f"{v:.0%}" if values is norm else str(v)
                    dark = v / vmax > 0.6
                    colour = "white" if dark else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
        ticks = range(n)
        ax.set_xticks(ticks, classes if annotate else [], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(ticks, classes if annotate else [], fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=10)
    return fig


def reliability_figure(before: Reliability, after: Reliability, temperature: float) -> Any:
    """Accuracy against confidence per bin, before and after temperature scaling; a
    calibrated model follows the diagonal. Bar width shows the bin, shading its share of
    the samples."""
    fig = _figure(9, 3.6)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, rel, title in (
        (axes[0], before, f"raw probabilities: ECE {before.ece:.3f}"),
        (axes[1], after, f"temperature T = {temperature:.2f}: ECE {after.ece:.3f}"),
    ):
        width = rel.edges[1] - rel.edges[0]
        total = max(1, rel.num_samples)
        for lo, count, acc, conf in zip(rel.edges, rel.counts, rel.accuracy, rel.confidence):
            if not count or acc is None or conf is None:
                continue
            alpha = 0.35 + 0.65 * min(1.0, 4 * count / total)
            ax.bar(lo, acc, width, align="edge", color="#3b75af", alpha=alpha, edgecolor="white")
            ax.plot([lo + width / 2] * 2, [acc, conf], color="#c0392b", linewidth=1.5)
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    return fig
