"""Figures for effnet's PNG plots through matplotlib's object API.

A :class:`~matplotlib.figure.Figure` drawn on its own Agg canvas needs neither pyplot nor a
backend switch, so plotting from a library call never changes the caller's matplotlib setup
(an interactive backend, open windows) and leaves no figure behind in pyplot's registry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["new_figure", "save_figure"]


def new_figure(figsize: tuple[float, float], dpi: float = 100) -> Any:
    """A figure on an Agg canvas; an ImportError that says how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plots need matplotlib: pip install matplotlib (or 'effnet[plot]')"
        ) from exc
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: float | None = None) -> Path:
    """Lay ``fig`` out tightly and write it as a PNG (creating the folder)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi or fig.dpi)
    return out
