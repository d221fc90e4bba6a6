"""A run's data record, ``data.json``: which source it trained on and which files each split held.

Fine-tuning and the scaling lab write it once (:func:`write_data_record`); evaluation, int8
calibration and the benchmarks read it back with :func:`recorded_splits`, which rebuilds the
run's very splits file for file. That is the one rule for which images a run held out: the files
its record lists under ``test`` (or ``val``), never a split recomputed from settings.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from effnet.data.datasets import DataSourceError, LabelledSet
from effnet.data.sources import SourceSplits, load_source
from effnet.data.splits import SplitFractions, apply_split_record
from effnet.files import read_json, write_json

__all__ = [
    "DATA_RECORD",
    "find_data_record",
    "read_data_record",
    "recorded_splits",
    "same_source",
    "write_data_record",
]

DATA_RECORD = "data.json"


def write_data_record(folder: str | os.PathLike[str], data: SourceSplits) -> Path:
    """``folder/data.json``: the source, its label mode, classes, skipped files and the split."""
    return write_json(Path(folder) / DATA_RECORD, data.to_dict())


def find_data_record(path: str | os.PathLike[str]) -> Path | None:
    """The ``data.json`` of a run: ``path`` itself, inside ``path`` (a run directory), or beside
    it (a checkpoint file in a run directory); None when there is none."""
    path = Path(path).expanduser()
    if path.name == DATA_RECORD:
        return path if path.is_file() else None
    folder = path if path.is_dir() else path.parent
    found = folder / DATA_RECORD
    return found if found.is_file() else None


def read_data_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The parsed record of :func:`find_data_record` (unknown keys are kept and ignored)."""
    found = find_data_record(path)
    if found is None:
        return None
    record = read_json(found, DataSourceError, "restore it from the run")
    if not isinstance(record, dict) or not isinstance(record.get("split"), dict):
        raise DataSourceError(
            f"{found} is not a run's data record (expected the keys source, label_mode and "
            f"split, as fine-tuning writes them)"
        )
    return record


def same_source(a: str, b: str) -> bool:
    """Whether two spellings name the same data source (``elpv`` in any case; one folder or
    CSV written relative or absolute)."""
    if a.lower() == "elpv" or b.lower() == "elpv":
        return a.lower() == b.lower()
    return a == b or Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def recorded_splits(
    path: str | os.PathLike[str],
    source: str | None = None,
    label_mode: str | None = None,
) -> SourceSplits | None:
    """The splits the run at ``path`` (run directory, checkpoint or ``data.json``) trained with.

    None when it has no record, or its record describes another ``source`` or ``label_mode``
    than the ones given (None: whatever the record says). The ELPV label mode comes from the
    record, never from a guess. Raises :class:`DataSourceError` when a recorded file is missing
    or changed class since the run.
    """
    record = read_data_record(path)
    if record is None:
        return None
    recorded_source = str(record.get("source", ""))
    if source is not None and not same_source(source, recorded_source):
        return None
    mode = record.get("label_mode")
    if label_mode is not None and mode is not None and label_mode != mode:
        return None
    split = record["split"]
    fractions = split.get("fractions") or {"val": 0.0, "test": 0.0}
    fresh = load_source(
        recorded_source,
        label_mode=mode,
        fractions=SplitFractions(val=float(fractions["val"]), test=float(fractions["test"])),
        seed=int(split.get("seed") or 0),
    )
    parts = [p for p in (fresh.train, fresh.val, fresh.test) if p is not None]
    every = LabelledSet(tuple(s for p in parts for s in p.samples), fresh.classes, fresh.train.root)
    rebuilt = apply_split_record(every, split)
    return dataclasses.replace(
        fresh,
        train=rebuilt["train"],
        val=rebuilt.get("val"),
        test=rebuilt.get("test"),
        record=split,
    )
