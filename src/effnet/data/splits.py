"""Stratified, seeded train/val/test splits recorded as JSON-serialisable dicts.

The split depends only on the seed, the fractions and the *set* of (relative path, label)
pairs: each class's files are sorted by relative path before a per-class seeded shuffle, so
file-system listing order never changes the result. Per-class sizes come from largest-remainder
rounding, so every split's class proportions are within one image of the global ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from effnet.data.datasets import DataSourceError, LabelledSet
from effnet.errors import ConfigError

__all__ = [
    "SPLIT_NAMES",
    "SplitFractions",
    "apply_split_record",
    "split_record",
    "stratified_split",
]

SPLIT_NAMES = ("train", "val", "test")
RECORD_VERSION = 1


@dataclass(frozen=True)
class SplitFractions:
    """Fractions of the whole set; ``train`` is the remainder ``1 - val - test``."""

    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        if not (math.isfinite(self.val) and math.isfinite(self.test)):
            raise ConfigError(
                f"split fractions must be finite numbers, got val={self.val}, test={self.test}; "
                "use e.g. val=0.15, test=0.15 (--split 70/15/15)"
            )
        if self.val < 0 or self.test < 0 or self.val + self.test >= 1.0:
            raise ConfigError(
                f"need val >= 0, test >= 0 and val + test < 1 (train gets the rest), got "
                f"val={self.val}, test={self.test}"
            )

    @property
    def train(self) -> float:
        return 1.0 - self.val - self.test

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @classmethod
    def carve(cls, test: float, val_of_train: float) -> SplitFractions:
        """Hold out ``test``, then take ``val_of_train`` of what is left as validation.

        ``carve(0.25, 0.1)`` is the ELPV paper's 75/25 protocol with 10% of train for early
        stopping: 67.5 / 7.5 / 25.
        """
        if not 0.0 <= val_of_train < 1.0:
            raise ConfigError(f"val_of_train must be in [0, 1), got {val_of_train}")
        return cls(val=(1.0 - test) * val_of_train, test=test)

    @classmethod
    def parse(cls, text: str) -> SplitFractions:
        """``"70/15/15"`` (train/val/test) or ``"75/25"`` (train/test, no val); percentages or
        fractions."""
        try:
            parts = [float(p) for p in text.replace(",", "/").split("/")]
        except ValueError:
            parts = []
        if len(parts) not in (2, 3) or min(parts, default=-1) < 0 or sum(parts) <= 0:
            raise ConfigError(
                f"expected split fractions like '70/15/15' (train/val/test) or '75/25' "
                f"(train/test), got {text!r}"
            )
        total = sum(parts)
        # 50/60 must not quietly become 45/55: the parts are percentages or fractions of the whole
        if not (math.isclose(total, 100.0, abs_tol=0.02) or math.isclose(total, 1.0, abs_tol=2e-4)):
            raise ConfigError(
                f"split fractions must sum to 100 (percentages) or 1 (fractions), got {text!r} "
                f"(sum {total:g}); write e.g. '70/15/15', '0.7/0.15/0.15' or '75/25'"
            )
        if len(parts) == 2:
            parts = [parts[0], 0.0, parts[1]]
        return cls(val=parts[1] / total, test=parts[2] / total)


def _allocate(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Split ``n`` items by ``fractions`` (largest remainder), each non-zero split >= 1 item."""
    wanted = {k: f for k, f in fractions.items() if f > 0}
    exact = {k: n * f for k, f in wanted.items()}
    sizes = {k: math.floor(v) for k, v in exact.items()}
    # Ties broken by the fixed split order so the result never depends on dict ordering.
    order = sorted(wanted, key=lambda k: (-(exact[k] - sizes[k]), SPLIT_NAMES.index(k)))
    for k in order[: n - sum(sizes.values())]:
        sizes[k] += 1
    # A split that rounded to zero borrows from the largest one, so rare classes appear in val
    # and test (a metric on a class missing from test is undefined).
    for k in wanted:
        if sizes[k] == 0:
            donor = max(sizes, key=lambda d: (sizes[d], -SPLIT_NAMES.index(d)))
            sizes[donor] -= 1
            sizes[k] += 1
    return {k: sizes.get(k, 0) for k in SPLIT_NAMES}


def stratified_split(
    data: LabelledSet, fractions: SplitFractions | None = None, *, seed: int = 0
) -> dict[str, LabelledSet]:
    """Split ``data`` per class into ``train``/``val``/``test`` (a split with fraction 0 is empty).

    ``fractions`` defaults to 70/15/15. Raises :class:`DataSourceError` when a class has fewer
    images than the splits that need it.
    """
    fr = (fractions or SplitFractions()).as_dict()
    needed = sum(1 for f in fr.values() if f > 0)
    by_class: dict[int, list[int]] = {}
    for i, (_, y) in enumerate(data.samples):
        by_class.setdefault(y, []).append(i)
    too_few = {
        data.classes[y]: len(idx) for y, idx in sorted(by_class.items()) if len(idx) < needed
    }
    if too_few:
        raise DataSourceError(
            f"too few images to split: every class needs at least {needed} (one per split "
            f"{[k for k, f in fr.items() if f > 0]}), found {too_few}; add images to those "
            "classes, drop them, or use fewer splits (e.g. val=0)"
        )
    chosen: dict[str, list[int]] = {k: [] for k in SPLIT_NAMES}
    for y, idx in sorted(by_class.items()):
        idx.sort(key=lambda i: data.relpath(data.samples[i][0]))
        # Seed per class (not one stream for all) so adding a class leaves the others' splits.
        rng = np.random.default_rng([seed, y])
        order = [idx[j] for j in rng.permutation(len(idx))]
        start = 0
        for name, size in _allocate(len(idx), fr).items():
            chosen[name].extend(order[start : start + size])
            start += size
    return {
        k: data.subset(sorted(v, key=lambda i: data.relpath(data.samples[i][0])))
        for k, v in chosen.items()
    }


def split_record(
    splits: Mapping[str, LabelledSet | None],
    *,
    mode: str,
    seed: int | None = None,
    fractions: SplitFractions | None = None,
    source: str = "",
) -> dict[str, Any]:
    """A JSON-serialisable record of ``splits`` (files relative to each set's root).

    ``mode`` is ``"stratified"`` (split here from one set) or ``"given"`` (the source came
    pre-split; ``seed``/``fractions`` then describe only a val set carved from train, if any).
    Save it next to a run; :func:`apply_split_record` rebuilds the same split later.
    """
    first = next(s for s in splits.values() if s is not None)
    out: dict[str, Any] = {
        "version": RECORD_VERSION,
        "source": source,
        "mode": mode,
        "seed": seed,
        "fractions": None if fractions is None else fractions.as_dict(),
        "classes": list(first.classes),
        "splits": {},
    }
    for name, part in splits.items():
        if part is None:
            continue
        out["splits"][name] = {
            **part.summary(),
            "files": [[part.relpath(p), part.classes[y]] for p, y in part.samples],
        }
    return out


def apply_split_record(data: LabelledSet, record: Mapping[str, Any]) -> dict[str, LabelledSet]:
    """Rebuild the splits in ``record`` from the full set ``data`` (e.g. to evaluate a run's
    test split). Every recorded file must still exist in ``data`` with the same class."""
    if list(record.get("classes", [])) != list(data.classes):
        raise DataSourceError(
            f"split record classes {record.get('classes')} differ from the data's classes "
            f"{list(data.classes)}; use the data the run was trained on"
        )
    index = {data.relpath(p): (p, y) for p, y in data.samples}
    out: dict[str, LabelledSet] = {}
    for name, part in record["splits"].items():
        missing = [f for f, c in part["files"] if f not in index or data.classes[index[f][1]] != c]
        if missing:
            raise DataSourceError(
                f"split {name!r}: {len(missing)} recorded file(s) are missing from the data or "
                f"changed class, e.g. {missing[:3]}; restore them or make a new split"
            )
        out[name] = LabelledSet(tuple(index[f] for f, _ in part["files"]), data.classes, data.root)
    return out
