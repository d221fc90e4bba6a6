"""Data that was silently wrong (issue 12): what is counted is what trains and what is scored.
Through the commands a user runs: a symlink loop, a class of truncated JPEGs, a FIFO, a CSV
whose header is not one, and every skipped file listed with its reason."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from effnet.data import load_source
from effnet.errors import BadDataError
from helpers.faults import cli, fifo, one_line_error, truncated_jpeg

needs_posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and FIFOs")
pytestmark = pytest.mark.filterwarnings("ignore:skipping")


def _copy(images: Path, dst: Path) -> Path:
    shutil.copytree(images, dst)
    return dst


def _files(data: object) -> list[str]:
    parts = [p for p in (data.train, data.val, data.test) if p is not None]  # type: ignore[attr-defined]
    return [str(path) for part in parts for path, _ in part.samples]


@needs_posix
def test_a_symlink_loop_adds_no_sample(images: Path, tmp_path: Path) -> None:
    """`red/loop -> ..` gave 820 samples from 20 files, the same files in train and test."""
    root = _copy(images, tmp_path / "data")
    os.symlink("..", root / "red" / "loop")
    data = load_source(root)
    files = _files(data)
    assert len(files) == len(set(files)) == 15
    skipped = {
        Path(s["path"]).name: s["reason"] for s in data.to_dict()["validation"]["skipped_files"]
    }
    assert "loop" in skipped


def test_a_class_of_truncated_jpegs_stops_the_run_before_training(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The up-front check passed them, the loader swapped each for the next sample: a 3-class
    model with no image of one class, and num_skipped_images 0."""
    root = _copy(images, tmp_path / "data")
    for i in range(3):
        truncated_jpeg(root / "grey" / f"cut{i}.jpg", size=40 + i)
    out = tmp_path / "run"
    line = one_line_error(["finetune", "--data", str(root), "--out", str(out), "--weights", "none"],
                          capsys)  # fmt: skip
    assert "'grey'" in line and "truncated" in line
    assert not out.exists()  # stopped before anything was written


def test_evaluate_scores_only_what_it_can_read(
    images: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """16 samples from 15 readable files: a truncated file was scored as its neighbour."""
    root = _copy(images, tmp_path / "data")
    truncated_jpeg(root / "red" / "cut.jpg")
    code, out, err = cli(["evaluate", str(checkpoint), "--data", str(root), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["num_samples"] == 15 and report["num_skipped_images"] == 1


@needs_posix
@pytest.mark.timeout(120)
def test_a_fifo_named_like_a_picture_never_hangs(images: Path, tmp_path: Path) -> None:
    """A FIFO named x.jpg hung the run forever before anything was written."""
    root = _copy(images, tmp_path / "data")
    fifo(root / "red" / "x.jpg")
    data = load_source(root)
    assert len(_files(data)) == 15
    reasons = {
        Path(s["path"]).name: s["reason"] for s in data.to_dict()["validation"]["skipped_files"]
    }
    assert "not a regular file" in reasons["x.jpg"]


def test_a_csv_whose_header_is_not_one(images: Path, tmp_path: Path) -> None:
    """Read as data: "1 row(s) point to missing files (line 1: img)"."""
    rows = [f"{p},{p.parent.name}" for p in sorted(images.rglob("*.png"))]
    csv = tmp_path / "data.csv"
    csv.write_text("img,cls\n" + "\n".join(rows) + "\n")
    with pytest.raises(BadDataError) as caught:
        load_source(csv)
    message = str(caught.value)
    assert "header" in message and "missing files" not in message
    csv.write_text("path,label\n" + "\n".join(rows) + "\n")
    assert len(_files(load_source(csv))) == 15


def test_every_skipped_file_is_in_data_json_with_its_reason(images: Path, tmp_path: Path) -> None:
    from effnet.data import write_data_record

    root = _copy(images, tmp_path / "data")
    (root / "red" / "empty.png").write_bytes(b"")
    (root / "green" / "page.jpg").write_text("<html>not a picture</html>")
    truncated_jpeg(root / "blue" / "cut.jpg")
    record = json.loads(write_data_record(tmp_path / "run", load_source(root)).read_text())
    reasons = {Path(s["path"]).name: s["reason"] for s in record["validation"]["skipped_files"]}
    assert set(reasons) == {"empty.png", "page.jpg", "cut.jpg"}
    assert all(reasons.values())
