"""Labelled image sets as plain data, the up-front decode of every file, and a torch Dataset.

Bad files are handled once, before training: :func:`validate_set` decodes every file with the
loader's own function, drops the ones that fail and reports each with its reason (the report
goes into ``data.json``). During training nothing is substituted: a file that breaks after the
check ends the run with its name, because a stand-in sample would silently change the data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from effnet.data.images import DecodedImages, SkippedFile, decode_images, load_image
from effnet.errors import BadDataError

__all__ = [
    "DataSourceError",
    "ImageDataset",
    "LabelledSet",
    "Sample",
    "SkippedFile",
    "ValidationReport",
    "validate_set",
]

Sample = tuple[Path, int]
"""(image path, class index into :attr:`LabelledSet.classes`)."""


class DataSourceError(BadDataError):
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
    """What the up-front check saw: files decoded, files left out (with why), files ignored."""

    checked: int = 0
    """Image files decoded."""
    skipped: list[SkippedFile] = field(default_factory=list)
    """Each file (or folder) left out, with its reason: undecodable, truncated, not a regular
    file, empty, a duplicate, a link leaving the root, an unreadable folder."""
    ignored: dict[str, dict[str, Any]] = field(default_factory=dict)
    """reason -> {"count", "examples"}: hidden entries and files without an image suffix."""

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def merge(self, other: ValidationReport) -> ValidationReport:
        ignored = {k: {"count": v["count"], "examples": list(v["examples"])}
                   for k, v in self.ignored.items()}  # fmt: skip
        for reason, slot in other.ignored.items():
            mine = ignored.setdefault(reason, {"count": 0, "examples": []})
            mine["count"] += slot["count"]
            mine["examples"] = (mine["examples"] + list(slot["examples"]))[:3]
        return ValidationReport(self.checked + other.checked, self.skipped + other.skipped, ignored)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "skipped": self.num_skipped,
            "skipped_files": [
                {"path": str(s.path), "reason": s.reason}
                | ({"class": s.label} if s.label is not None else {})
                for s in self.skipped
            ],
            "ignored": self.ignored,
        }


def warn_skipped(skipped: Sequence[SkippedFile], checked: int, stacklevel: int = 2) -> None:
    """One warning naming the first few files left out (the report lists them all)."""
    if not skipped:
        return
    shown = "; ".join(f"{s.path} ({s.reason})" for s in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    of = f" (of {checked} image files decoded)" if checked else ""
    warnings.warn(
        f"skipping {len(skipped)} file(s){of}: {shown}{more}",
        stacklevel=stacklevel + 1,
    )


def validate_set(
    data: LabelledSet,
    *,
    images: DecodedImages | None = None,
    progress: bool = False,
    warn: bool = True,
    deep: bool = True,
) -> tuple[LabelledSet, ValidationReport]:
    """Decode every file of ``data`` once; drop the ones that fail and report each with why.

    Decoding uses :func:`~effnet.data.images.load_image`, the loaders' own function, so a file
    that passes here is one the run can read (a truncated JPEG passes a header check, not this).
    With ``images`` the decoded pictures are kept there for the run. With ``warn`` one warning
    lists the first few bad paths. ``deep`` is accepted for compatibility; the check always
    decodes.
    """
    del deep
    failed = decode_images([p for p, _ in data.samples], images=images, progress=progress)
    bad = {os.fspath(s.path): s.reason for s in failed}
    keep = tuple((p, y) for p, y in data.samples if os.fspath(p) not in bad)
    report = ValidationReport(
        checked=len(data),
        skipped=[
            SkippedFile(p, bad[os.fspath(p)], data.classes[y])
            for p, y in data.samples
            if os.fspath(p) in bad
        ],
    )
    if warn:
        warn_skipped(report.skipped, report.checked)
    return LabelledSet(keep, data.classes, data.root), report


class ImageDataset(Dataset[tuple[Any, int]]):
    """Loads ``(transform(image), label)`` with ``loader`` (default :func:`load_image`).

    An unreadable file raises :class:`~effnet.data.images.UnreadableImageError` naming it: the
    files were decoded before the run (:func:`validate_set`), so a failure here means the data
    changed on disk, and standing another sample in for it would silently change what trains
    and what is scored. Pass a :class:`~effnet.data.images.DecodedImages` as ``loader`` to
    train from the pictures the check already decoded.
    """

    def __init__(
        self,
        data: LabelledSet | Sequence[Sample],
        transform: Callable[[Any], Any] | None = None,
        *,
        loader: Callable[[str | os.PathLike[str]], Any] = load_image,
    ) -> None:
        self.samples: tuple[Sample, ...] = tuple(
            data.samples if isinstance(data, LabelledSet) else data
        )
        self.classes = data.classes if isinstance(data, LabelledSet) else None
        self.transform = transform
        self.loader = loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        image = self.loader(path)
        return (self.transform(image) if self.transform else image), label
