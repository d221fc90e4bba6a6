"""PNG plots of the lab's experiments (matplotlib's object API, through :mod:`effnet.plotting`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from effnet.lab.experiment import macs_unit
from effnet.plotting import new_figure, save_figure

__all__ = ["plot_compare", "plot_search"]

# Tableau colours in the order the paper's Figure 3 panels read: depth, width, resolution.
_STYLE = {
    "compound": ("#d62728", "o", "compound"),
    "depth": ("#1f77b4", "s", "depth only"),
    "width": ("#2ca02c", "^", "width only"),
    "resolution": ("#9467bd", "D", "resolution only"),
}
_SIZE = (8.0, 5.0)  # inches at 100 dpi: 800 x 500 px
_DPI = 100


def _macs_axis(rows: Sequence[dict[str, Any]]) -> tuple[float, str]:
    """(divisor, unit) for MACs on the x axis: the tables' rule (MMACs below 1 GMAC)."""
    return macs_unit(r["macs"] for r in rows)


def plot_compare(
    points: Sequence[dict[str, Any]], path: str | Path, title: str = "", metric: str = "val_acc"
) -> Path:
    """Accuracy against MACs (log x), one line per strategy from the shared base point.

    ``points`` are aggregated rows with ``strategy``, ``macs``, ``<metric>_mean`` and
    optionally ``<metric>_min`` / ``<metric>_max`` (drawn as error bars across seeds).
    """
    fig = new_figure(_SIZE, dpi=_DPI)
    ax = fig.add_subplot(1, 1, 1)
    scale, unit = _macs_axis(points)
    base = [p for p in points if p["strategy"] == "base"]
    for strategy, (colour, marker, label) in _STYLE.items():
        rows = sorted(
            base + [p for p in points if p["strategy"] == strategy], key=lambda p: p["macs"]
        )
        if len(rows) <= len(base):
            continue
        xs = [p["macs"] / scale for p in rows]
        ys = [100 * p[f"{metric}_mean"] for p in rows]
        low = [
            100 * (p[f"{metric}_mean"] - p.get(f"{metric}_min", p[f"{metric}_mean"])) for p in rows
        ]
        high = [
            100 * (p.get(f"{metric}_max", p[f"{metric}_mean"]) - p[f"{metric}_mean"]) for p in rows
        ]
        ax.errorbar(
            xs,
            ys,
            yerr=[low, high],
            color=colour,
            marker=marker,
            capsize=3,
            linewidth=2.2 if strategy == "compound" else 1.4,
            label=label,
        )
        for p, x, y in zip(rows, xs, ys):
            if p["strategy"] != "base":
                ax.annotate(
                    f"{p['target']:g}x",
                    (x, y),
                    textcoords="offset points",
                    xytext=(5, -11),
                    fontsize=7,
                    color=colour,
                )
    ax.set_xscale("log")
    if base:
        # plain numbers at 1x, 2x, 4x ... the base, not matplotlib's 4x10^0 log labels
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

        targets = sorted({1.0, *(p["target"] for p in points)})
        ax.xaxis.set_major_locator(FixedLocator([base[0]["macs"] / scale * t for t in targets]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ticks = ", ".join(f"{t:g}x" for t in targets)
        ax.set_xlabel(f"{unit} (measured, log scale; ticks at {ticks} the base)")
    else:
        ax.set_xlabel(f"{unit} (measured, log scale)")
    ax.set_ylabel(f"{metric.replace('_acc', '')} accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="lower right")
    ax.set_title(title or "compound vs one-dimensional scaling at matched MACs", fontsize=10)
    return save_figure(fig, path)


def plot_search(
    rows: Sequence[dict[str, Any]],
    path: str | Path,
    winner: str | None = None,
    title: str = "",
    metric: str = "val_acc",
) -> Path:
    """Accuracy against MACs of every trained model, coloured by trial, winner starred."""
    fig = new_figure(_SIZE, dpi=_DPI)
    ax = fig.add_subplot(1, 1, 1)
    trained = [r for r in rows if r.get(f"{metric}_mean") is not None]
    scale, unit = _macs_axis(trained)
    colours = _colours(len(trained))
    for i, (row, colour) in enumerate(zip(trained, colours)):
        is_winner = row["key"] == winner
        ax.scatter(
            row["macs"] / scale,
            100 * row[f"{metric}_mean"],
            s=220 if is_winner else 45,
            marker="*" if is_winner else "o",
            color=colour,
            edgecolors="black" if is_winner else "none",
            zorder=3 if is_winner else 2,
            label=f"{i + 1}: a={row['alpha']:g} b={row['beta']:g} g={row['gamma']:g}"
            + (" (winner)" if is_winner else ""),
        )
        ax.annotate(
            str(i + 1),
            (row["macs"] / scale, 100 * row[f"{metric}_mean"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    # phi = 1 models sit within --macs-tolerance of one budget: a linear axis reads better
    ax.set_xlabel(f"{unit} of the phi = 1 model (measured)")
    ax.set_ylabel(f"{metric.replace('_acc', '')} accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    if trained:
        ax.legend(
            fontsize=6,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            ncol=1 if len(trained) <= 18 else 2,
        )
    ax.set_title(title or "alpha, beta, gamma search at phi = 1", fontsize=10)
    return save_figure(fig, path)


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n - 1)) for i in range(n)]
