"""Folder scanning that cannot be fooled: symlinks, hard links, FIFOs, empty, hidden and
unreadable files. Each case ends in the same place: every sample is one real, decodable file,
used once, and whatever was left out is listed with its reason."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from tiny_images import make_class_folder, save_corrupt, save_rgb, save_truncated_jpeg

from effnet.data import (
    DataSourceError,
    SplitFractions,
    check_image,
    list_images,
    load_image,
    load_source,
)
from effnet.data.images import UnreadableImageError
from effnet.errors import BadDataError

needs_posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and FIFOs")
NO_SPLIT = SplitFractions(val=0.0, test=0.25)


def _all_files(src) -> list[str]:  # type: ignore[no-untyped-def]
    parts = [p for p in (src.train, src.val, src.test) if p is not None]
    return [part.relpath(p) for part in parts for p, _ in part.samples]


def _skipped(src) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """relative path -> reason, as data.json lists them."""
    record = json.loads(json.dumps(src.to_dict()))
    root = src.train.root
    out = {}
    for item in record["validation"]["skipped_files"]:
        path = Path(item["path"])
        out[path.relative_to(root).as_posix() if path.is_absolute() else item["path"]] = item[
            "reason"
        ]
    return out


@needs_posix
def test_symlink_loop_adds_no_sample_and_no_leak(tmp_path: Path) -> None:
    """``red/loop -> ..`` once gave 820 samples from 20 files, the same files in train and test."""
    root = make_class_folder(tmp_path / "ds", {"blue": 10, "red": 10})
    os.symlink("..", root / "red" / "loop")
    src = load_source(root, fractions=NO_SPLIT)
    files = _all_files(src)
    assert len(files) == len(set(files)) == 20
    assert src.train.class_counts + src.test.class_counts == [8, 8, 2, 2]
    assert "already scanned" in _skipped(src)["red/loop"]


@needs_posix
def test_symlink_to_a_sibling_class_does_not_relabel_its_images(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"blue": 4, "red": 4})
    os.symlink("../blue", root / "red" / "more")
    src = load_source(root, validate=False, fractions=NO_SPLIT)
    assert len(_all_files(src)) == 8
    assert all(not f.startswith("red/more") for f in _all_files(src)), "blue images labelled red"


@needs_posix
def test_symlinks_inside_the_root_are_followed_once(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    save_rgb(root / "a" / "sub" / "deep.png", (9, 9, 9))
    os.symlink("sub", root / "a" / "linked")  # the same folder again
    os.symlink("img_000.png", root / "a" / "copy.png")  # the same file again
    src = load_source(root, fractions=NO_SPLIT)
    files = _all_files(src)
    assert sorted(f for f in files if f.startswith("a/")) == [
        "a/img_000.png",
        "a/img_001.png",
        "a/img_002.png",
        "a/img_003.png",
        "a/sub/deep.png",
    ]
    skipped = _skipped(src)
    assert "same file as a/img_000.png" in skipped["a/copy.png"]
    assert "already scanned" in skipped["a/linked"]


@needs_posix
def test_symlinks_leading_outside_the_root_are_not_followed(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    outside = make_class_folder(tmp_path / "elsewhere", {"x": 3})
    os.symlink(outside / "x", root / "a" / "ext")
    os.symlink(outside / "x" / "img_000.png", root / "b" / "ext.png")
    os.symlink("/", root / "b" / "everything")
    src = load_source(root, fractions=NO_SPLIT)
    assert len(_all_files(src)) == 8
    skipped = _skipped(src)
    for link in ("a/ext", "b/ext.png", "b/everything"):
        assert "outside the dataset root" in skipped[link]


@needs_posix
def test_hard_links_are_one_file(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4, "c": 4})
    os.link(root / "a" / "img_000.png", root / "a" / "twin.png")  # same class: keep one
    os.link(root / "b" / "img_000.png", root / "c" / "stray.png")  # two classes: ambiguous
    with pytest.warns(UserWarning, match="skipping"):
        src = load_source(root, fractions=NO_SPLIT)
    files = _all_files(src)
    assert len(files) == len(set(files)) == 11
    assert "a/twin.png" not in files and "a/img_000.png" in files
    assert "b/img_000.png" not in files and "c/stray.png" not in files
    skipped = _skipped(src)
    assert "same file as a/img_000.png" in skipped["a/twin.png"]
    assert "ambiguous" in skipped["c/stray.png"] and "ambiguous" in skipped["b/img_000.png"]


@needs_posix
def test_a_file_linked_into_train_and_test_stays_in_train(tmp_path: Path) -> None:
    make_class_folder(tmp_path / "train", {"cat": 6, "dog": 6})
    make_class_folder(tmp_path / "test", {"cat": 2, "dog": 2})
    os.link(tmp_path / "train" / "cat" / "img_005.png", tmp_path / "test" / "cat" / "leak.png")
    src = load_source(tmp_path, fractions=SplitFractions(val=0.0, test=0.0))
    assert src.test is not None and "test/cat/leak.png" not in _all_files(src)
    assert src.test.class_counts == [2, 2]
    assert "same file as train/cat/img_005.png" in _skipped(src)["test/cat/leak.png"]


@needs_posix
@pytest.mark.timeout(30)
def test_a_fifo_named_like_an_image_is_never_opened(tmp_path: Path) -> None:
    """Opening a FIFO blocks until a writer appears: the run used to hang forever."""
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    os.mkfifo(root / "a" / "x.jpg")
    src = load_source(root, fractions=NO_SPLIT)
    assert len(_all_files(src)) == 8
    assert "not a regular file" in _skipped(src)["a/x.jpg"]
    assert [p.name for p in list_images(root / "a")] == [f"img_{i:03d}.png" for i in range(4)]
    with pytest.raises(UnreadableImageError, match="not a regular file"):
        load_image(root / "a" / "x.jpg")
    assert "not a regular file" in str(check_image(root / "a" / "x.jpg"))


def test_empty_corrupt_and_misnamed_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "a" / "page.png").write_text("<html>not an image</html>")
    save_corrupt(root / "b" / "noise.jpg")
    with pytest.warns(UserWarning, match="skipping 3"):
        src = load_source(root, fractions=NO_SPLIT)
    skipped = _skipped(src)
    assert set(skipped) == {"a/empty.jpg", "a/page.png", "b/noise.jpg"}
    assert "empty file" in skipped["a/empty.jpg"]
    assert src.num_skipped == 3 and len(_all_files(src)) == 8


def test_truncated_jpeg_is_caught_up_front_and_recorded(tmp_path: Path) -> None:
    """The header check passed truncated JPEGs; the loader then swapped in the next sample."""
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    save_truncated_jpeg(root / "a" / "cut.jpg")
    assert check_image(root / "a" / "cut.jpg") is None  # the cheap check alone is fooled
    with pytest.warns(UserWarning, match="skipping 1"):
        src = load_source(root, fractions=NO_SPLIT)
    assert "a/cut.jpg" not in _all_files(src)
    assert "truncated" in _skipped(src)["a/cut.jpg"]
    assert src.to_dict()["validation"]["skipped"] == 1


def test_a_class_of_truncated_jpegs_stops_the_run_naming_it(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    for i in range(3):
        save_truncated_jpeg(root / "c" / f"cut{i}.jpg", seed=i)
    with pytest.warns(UserWarning), pytest.raises(BadDataError) as info:
        load_source(root)
    message = str(info.value)
    assert "'c'" in message and "truncated" in message and "remove" in message
    assert isinstance(info.value, DataSourceError)


def test_hidden_files_and_other_suffixes_are_ignored_and_counted(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    (root / "a" / "._img_000.png").write_bytes(b"\x00\x05\x16\x07" + b"\0" * 60)  # AppleDouble
    (root / "a" / ".DS_Store").write_bytes(b"\0" * 20)
    save_rgb(root / "b" / ".ipynb_checkpoints" / "img_000-checkpoint.png", (1, 1, 1))
    (root / "b" / "notes.txt").write_text("x")
    save_rgb(root / "b" / "UPPER.JPG", (5, 5, 5))
    save_rgb(root / "b" / "Mixed.PnG", (6, 6, 6))
    save_rgb(root / "__MACOSX" / "a" / "._img_000.png", (0, 0, 0))
    save_rgb(root / "stray.png", (0, 0, 0))
    src = load_source(root, fractions=NO_SPLIT)
    files = _all_files(src)
    assert "b/UPPER.JPG" in files and "b/Mixed.PnG" in files and len(files) == 10
    assert src.num_skipped == 0
    ignored = src.to_dict()["validation"]["ignored"]
    assert ignored["hidden"]["count"] == 4
    assert ignored["image outside the class folders"]["examples"] == ["stray.png"]
    assert ignored["not an image (.txt)"]["count"] == 1


@needs_posix
def test_broken_symlink_is_skipped_with_reason(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    os.symlink("gone.png", root / "a" / "dangling.png")
    os.symlink("self.png", root / "a" / "self.png")  # a link to itself: ELOOP
    src = load_source(root, fractions=NO_SPLIT)
    skipped = _skipped(src)
    assert "broken symlink" in skipped["a/dangling.png"]
    assert "broken symlink" in skipped["a/self.png"]


def test_unreadable_subfolder_is_skipped_and_an_unreadable_class_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4, "c": 2})
    save_rgb(root / "a" / "locked" / "x.png", (1, 1, 1))
    real_scandir = os.scandir
    denied = {str(root / "a" / "locked"), str(root / "c")}

    def scandir(path):  # type: ignore[no-untyped-def]
        if os.fspath(path) in denied:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(BadDataError) as info:
        load_source(root)
    message = str(info.value)
    assert "'c'" in message and "Permission denied" in message and "chmod" in message
    denied.discard(str(root / "c"))
    src = load_source(root, fractions=SplitFractions(val=0.0, test=0.5))
    assert "Permission denied" in _skipped(src)["a/locked"]
    assert len(_all_files(src)) == 10


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file; POSIX modes"
)
def test_unreadable_files_really_chmod(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    (root / "a" / "img_000.png").chmod(0)
    try:
        src = load_source(root, fractions=NO_SPLIT)
        assert "a/img_000.png" in _skipped(src)
    finally:
        (root / "a" / "img_000.png").chmod(0o644)


def test_unreadable_root_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if os.fspath(path) == str(root):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(BadDataError, match=r"cannot list .*Permission denied.*chmod"):
        load_source(root)


def test_list_images_skips_the_same_way(tmp_path: Path) -> None:
    save_rgb(tmp_path / "a.png", (1, 1, 1))
    (tmp_path / "empty.jpg").write_bytes(b"")
    if sys.platform != "win32":
        os.symlink(".", tmp_path / "again")
        os.symlink("a.png", tmp_path / "b.png")
    with pytest.warns(UserWarning, match="not listed"):
        found = list_images(tmp_path)
    assert [p.name for p in found] == ["a.png"]
