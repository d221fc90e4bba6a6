"""CSV sources a new user gets wrong: headers, empty files, labels, paths, duplicates, encodings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from tiny_images import save_rgb

from effnet.data import SplitFractions, load_source
from effnet.errors import BadDataError

NO_SPLIT = SplitFractions(val=0.0, test=0.5)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for i in range(8):
        save_rgb(tmp_path / "img" / f"{i}.png", (i, 2 * i, 3 * i))
    return tmp_path


def _rows(n: int = 8) -> list[str]:
    return [f"img/{i}.png,{'cat' if i % 2 else 'dog'}" for i in range(n)]


def test_unrecognised_header_lists_the_accepted_ones(images: Path) -> None:
    """It was read as data: "1 row(s) point to missing files (line 1: img)"."""
    (images / "d.csv").write_text("img,cls\n" + "\n".join(_rows()) + "\n")
    with pytest.raises(BadDataError) as info:
        load_source(images / "d.csv")
    message = str(info.value)
    assert "header" in message and "'img', 'cls'" in message
    assert "path" in message and "label" in message and "missing files" not in message


def test_near_header_names_are_suggested(images: Path) -> None:
    (images / "d.csv").write_text("path,lable\n" + "\n".join(_rows()) + "\n")
    with pytest.raises(BadDataError, match="Did you mean label"):
        load_source(images / "d.csv")


@pytest.mark.parametrize(
    "header", ["filename,class", "image,target", "Path,Label,Split", "file,category"]
)
def test_accepted_headers(images: Path, header: str) -> None:
    rows = [r + (",train" if header.endswith("Split") else "") for r in _rows()]
    (images / "d.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    src = load_source(images / "d.csv", fractions=NO_SPLIT)
    assert src.classes == ("cat", "dog")


def test_empty_and_header_only_csv(images: Path) -> None:
    (images / "empty.csv").write_text("\n \n")
    with pytest.raises(BadDataError, match="empty"):
        load_source(images / "empty.csv")
    (images / "head.csv").write_text("path,label\n")
    with pytest.raises(BadDataError, match="header but no rows"):
        load_source(images / "head.csv")


def test_missing_label_names_the_line(images: Path) -> None:
    (images / "d.csv").write_text("\n".join(_rows(4)) + "\nimg/4.png,\nimg/5.png\n")
    with pytest.raises(BadDataError, match=r"line 5: expected path,label"):
        load_source(images / "d.csv")


def test_labels_and_paths_are_stripped_and_relative_to_the_csv(images: Path) -> None:
    sub = images / "lists"
    sub.mkdir()
    rows = [f" ../img/{i}.png , {'cat ' if i % 2 else ' dog'}" for i in range(6)]
    rows += [f"{images / 'img' / '6.png'},cat", f"{images / 'img' / '7.png'},dog"]  # absolute
    (sub / "d.csv").write_text("\n".join(rows) + "\n")
    src = load_source(sub / "d.csv", fractions=NO_SPLIT)
    assert src.classes == ("cat", "dog")
    assert len(src.train) + len(src.test) == 8


def test_the_same_file_twice(images: Path) -> None:
    (images / "same.csv").write_text("\n".join(_rows()) + "\nimg/2.png,dog\n./img/2.png,dog\n")
    with pytest.warns(UserWarning, match="skipping 2"):
        src = load_source(images / "same.csv", fractions=NO_SPLIT)
    files = [p for part in (src.train, src.test) for p, _ in part.samples]
    assert len(files) == len(set(files)) == 8
    assert all("line 3" in s.reason for s in src.validation.skipped)
    (images / "clash.csv").write_text("\n".join(_rows()) + "\nimg/2.png,cat\n")
    with pytest.raises(BadDataError, match=r"line 9.*line 3|line 3.*line 9"):
        load_source(images / "clash.csv")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX FIFOs and hard links")
@pytest.mark.timeout(30)
def test_rows_pointing_at_a_fifo_or_a_folder_are_skipped(images: Path) -> None:
    os.mkfifo(images / "img" / "fifo.png")
    (images / "img" / "dir.png").mkdir()
    os.link(images / "img" / "0.png", images / "img" / "hard.png")
    rows = [*_rows(), "img/fifo.png,cat", "img/dir.png,dog", "img/hard.png,dog"]
    (images / "d.csv").write_text("\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match="skipping 3"):
        src = load_source(images / "d.csv", fractions=NO_SPLIT)
    reasons = {s.path.name: s.reason for s in src.validation.skipped}
    assert "not a regular file" in reasons["fifo.png"]
    assert "folder" in reasons["dir.png"]
    assert "same file" in reasons["hard.png"]


def test_csv_that_is_not_utf8_text(images: Path) -> None:
    (images / "latin.csv").write_bytes("img/0.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(BadDataError, match="UTF-8"):
        load_source(images / "latin.csv")
    (images / "binary.csv").write_bytes(bytes(range(256)))
    with pytest.raises(BadDataError):
        load_source(images / "binary.csv")


def test_missing_files_still_named(images: Path) -> None:
    (images / "d.csv").write_text("path,label\n" + "\n".join(_rows()) + "\nimg/gone.png,cat\n")
    with pytest.raises(BadDataError, match=r"1 row\(s\) point to missing files \(line 10"):
        load_source(images / "d.csv")


def test_labels_differing_only_in_case_are_flagged(images: Path) -> None:
    rows = [f"img/{i}.png,{'Cat' if i % 2 else 'cat'}" for i in range(8)]
    (images / "d.csv").write_text("\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match=r"\[\['Cat', 'cat'\]\] differ only in case"):
        src = load_source(images / "d.csv", fractions=NO_SPLIT)
    assert src.classes == ("Cat", "cat")
