"""effnet.files: a file is replaced whole or not at all; damaged JSON names the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from effnet.errors import RunDirError
from effnet.files import atomic_write, read_json, write_json


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = write_json(tmp_path / "deep" / "state.json", {"epoch": 1})
    assert json.loads(path.read_text()) == {"epoch": 1} and path.stat().st_mode & 0o044

    def half_then_crash(tmp: Path) -> None:
        tmp.write_text('{"epoch": 2,')
        raise KeyboardInterrupt  # a kill in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_crash)
    assert json.loads(path.read_text()) == {"epoch": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_damaged_json_raises_the_given_error_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(RunDirError, match=r"is not valid JSON .*; delete it"):
        read_json(tmp_path / "t.json", RunDirError, "delete it")
