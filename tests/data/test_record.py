"""A run's data.json, written once and read back file for file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from effnet.data import (
    DataSourceError,
    SplitFractions,
    load_source,
    recorded_splits,
    write_data_record,
)
from helpers.images import make_folder


def test_the_recorded_split_comes_back_file_for_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", per_class=10, size=16)
    run = tmp_path / "run"
    data = load_source(folder, fractions=SplitFractions(0.2, 0.2), seed=5, progress=False)
    write_data_record(run, data)
    # more images arrive after the run: the record, not a recomputed split, says what it held
    make_folder(tmp_path / "data", per_class=14, size=16, seed=1)
    again = recorded_splits(run / "last.safetensors", source=str(folder))
    assert again is not None
    for name in ("train", "val", "test"):
        assert getattr(again, name).samples == getattr(data, name).samples, name
    assert recorded_splits(run, source=str(tmp_path / "other")) is None  # another source
    assert recorded_splits(tmp_path / "no-run") is None
    # the record tolerates keys it does not know (a newer writer)
    record = json.loads((run / "data.json").read_text())
    (run / "data.json").write_text(json.dumps({**record, "something_new": [1, 2]}))
    assert recorded_splits(run) is not None


def test_a_recorded_file_that_is_gone_names_the_fix(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", per_class=6, size=16)
    data = load_source(folder, fractions=SplitFractions(0.2, 0.2), progress=False)
    write_data_record(tmp_path / "run", data)
    test_file = data.test.samples[0][0]
    test_file.unlink()
    with pytest.raises(DataSourceError, match="missing from the data"):
        recorded_splits(tmp_path / "run")
