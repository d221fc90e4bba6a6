"""Labelled image sets as plain data, an up-front validity check, and a forgiving torch Dataset.

Bad files are handled twice. Before training, :func:`validate_set` runs a cheap header check on
every file, drops the bad ones and reports them (the count goes into the run report). During
training, a file that became unreadable later is replaced by the next readable sample instead
of killing the batch, and counted.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, get_worker_info

from effnet.data.images import UnreadableImageError, check_image, load_image

__all__ = [
    "DataSourceError",
    "ImageDataset",
    "LabelledSet",
    "Sample",
    "ValidationReport",
    "validate_set",
]

Sample = tuple[Path, int]
"""(image path, class index into :attr:`LabelledSet.classes`)."""

_MAX_WORKER_SLOTS = 256


class DataSourceError(ValueError):
    """A data source that would make training fail or mislead; raised before training starts."""


@dataclass(frozen=True)
class LabelledSet:
    """Samples ``(path, label_index)`` and the class names the indices point into.

    ``root`` is the folder paths are reported relative to (split records stay portable).
    """

    samples: tuple[Sample, ...]
    classes: tuple[str, ...]
    root: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.classes)
        bad = [(str(p), y) for p, y in self.samples if not 0 <= y < n]
        if bad:
            raise ValueError(
                f"label indices must be in [0, {n}) for classes {list(self.classes)}, found "
                f"{bad[:3]}; build samples from the class list"
            )

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [y for _, y in self.samples]

    @property
    def class_counts(self) -> list[int]:
        """Images per class, aligned with :attr:`classes` (zeros included)."""
        counts = [0] * len(self.classes)
        for _, y in self.samples:
            counts[y] += 1
        return counts

    def relpath(self, path: Path) -> str:
        """``path`` as POSIX text relative to :attr:`root` (absolute when outside it)."""
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path.as_posix()

    def subset(self, indices: Iterable[int]) -> LabelledSet:
        return LabelledSet(tuple(self.samples[i] for i in indices), self.classes, self.root)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable size and per-class counts."""
        return {
            "count": len(self),
            "class_counts": dict(zip(self.classes, self.class_counts)),
        }


@dataclass
class ValidationReport:
    """Result of :func:`validate_set`: how many files were checked and which were dropped."""

    checked: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) for each dropped file."""

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def merge(self, other: ValidationReport) -> ValidationReport:
        return ValidationReport(self.checked + other.checked, self.skipped + other.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "skipped": self.num_skipped,
            "skipped_files": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def validate_set(
    data: LabelledSet, *, deep: bool = False, warn: bool = True
) -> tuple[LabelledSet, ValidationReport]:
    """Drop the files :func:`~effnet.data.images.check_image` rejects; report them.

    ``deep=True`` decodes every image (catches truncated JPEGs; much slower). With ``warn`` one
    warning lists the first few bad paths so the user sees them even without reading a report.
    """
    keep: list[Sample] = []
    report = ValidationReport(checked=len(data))
    for path, label in data.samples:
        reason = check_image(path, deep=deep)
        if reason is None:
            keep.append((path, label))
        else:
            report.skipped.append((str(path), reason))
    if warn and report.skipped:
        shown = "; ".join(f"{p} ({r})" for p, r in report.skipped[:5])
        more = f" and {report.num_skipped - 5} more" if report.num_skipped > 5 else ""
        warnings.warn(
            f"skipping {report.num_skipped} unreadable image(s) of {report.checked}: {shown}{more}",
            stacklevel=2,
        )
    return LabelledSet(tuple(keep), data.classes, data.root), report


class ImageDataset(Dataset[tuple[Any, int]]):
    """Loads ``(transform(image), label)``; unreadable files are replaced, not fatal.

    On :class:`UnreadableImageError` the next sample (``index + 1``, ``+ 2``, ... up to
    ``max_retries``) is returned instead, so batch shapes stay fixed (BatchNorm, DDP step counts)
    and the rare substitute barely shifts class balance. Failures are counted in shared memory
    per DataLoader worker, so :attr:`num_failed` is right in the main process even with
    ``num_workers > 0``; each worker also warns with the path. ``strict=True`` re-raises instead.
    """

    def __init__(
        self,
        data: LabelledSet | Sequence[Sample],
        transform: Callable[[Any], Any] | None = None,
        *,
        loader: Callable[[str | os.PathLike[str]], Any] = load_image,
        strict: bool = False,
        max_retries: int = 10,
    ) -> None:
        self.samples: tuple[Sample, ...] = tuple(
            data.samples if isinstance(data, LabelledSet) else data
        )
        self.classes = data.classes if isinstance(data, LabelledSet) else None
        self.transform = transform
        self.loader = loader
        self.strict = strict
        self.max_retries = max_retries
        # One slot per process (main = 0, worker k = k + 1): each slot has a single writer, so
        # no lock is needed; shared memory survives fork and is passed by handle under spawn.
        self._fail_slots = torch.zeros(_MAX_WORKER_SLOTS + 1, dtype=torch.int64).share_memory_()
        self.failed: list[tuple[str, str]] = []
        """(path, reason) of failures seen *in this process* (workers keep their own)."""

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_failed(self) -> int:
        """Failed loads during iteration, summed over all DataLoader workers.

        Counts events, not files: a file that stays broken for three epochs counts three times.
        """
        return int(self._fail_slots.sum())

    def __getitem__(self, index: int) -> tuple[Any, int]:
        n = len(self.samples)
        for attempt in range(min(self.max_retries, n) + 1):
            path, label = self.samples[(index + attempt) % n]
            try:
                image = self.loader(path)
            except UnreadableImageError as err:
                if self.strict:
                    raise
                self._record(err)
                continue
            return (self.transform(image) if self.transform else image), label
        raise UnreadableImageError(
            self.samples[index][0],
            f"it and the next {self.max_retries} samples failed to load; the data changed on "
            "disk since validation, re-run with fresh data",
        )

    def _record(self, err: UnreadableImageError) -> None:
        info = get_worker_info()
        slot = 0 if info is None else 1 + info.id % _MAX_WORKER_SLOTS
        self._fail_slots[slot] += 1
        self.failed.append((str(err.path), err.reason))
        warnings.warn(f"skipping unreadable image during loading: {err}", stacklevel=3)
