"""load_source on folders, split folders and CSVs: validation, stratified splits, early errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_images import make_class_folder, save_corrupt, save_rgb

from effnet.data import (
    DataSourceError,
    SplitFractions,
    apply_split_record,
    load_source,
    stratified_split,
)
from effnet.data.datasets import LabelledSet


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """3 classes x 8 images, plus a corrupt ``.jpg`` in class ``b`` and noise to ignore."""
    root = make_class_folder(tmp_path / "ds", {"a": 8, "b": 8, "c": 8})
    save_corrupt(root / "b" / "broken.jpg")
    (root / "a" / "notes.txt").write_text("not an image")
    save_rgb(root / ".ipynb_checkpoints" / "x.png", (0, 0, 0))  # hidden: not a class
    return root


def _files(part: LabelledSet | None) -> list[str]:
    assert part is not None
    return [part.relpath(p) for p, _ in part.samples]


def test_class_folder_is_validated_split_and_recorded(class_folder: Path) -> None:
    with pytest.warns(UserWarning, match="skipping 1 file"):
        src = load_source(class_folder, seed=0)
    assert src.kind == "folder" and src.classes == ("a", "b", "c")
    # The corrupt .jpg was dropped and counted; .txt and the hidden folder were never listed.
    assert src.num_skipped == 1 and src.validation.checked == 25
    assert src.validation.skipped[0].path.name == "broken.jpg"
    parts = [src.train, src.val, src.test]
    assert [p.class_counts for p in parts if p] == [[6, 6, 6], [1, 1, 1], [1, 1, 1]]
    all_files = sorted(f for p in parts for f in _files(p))
    assert len(all_files) == len(set(all_files)) == 24  # disjoint and complete
    record = json.loads(json.dumps(src.to_dict()))  # JSON-serialisable
    assert record["validation"]["skipped"] == 1
    assert record["split"]["splits"]["val"]["class_counts"] == {"a": 1, "b": 1, "c": 1}
    assert record["split"]["seed"] == 0 and record["split"]["mode"] == "stratified"


def test_split_is_reproducible_and_independent_of_listing_order(tmp_path: Path) -> None:
    data = load_source(make_class_folder(tmp_path, {"x": 20, "y": 20}), validate=False)
    again = load_source(tmp_path, validate=False)
    assert _files(data.test) == _files(again.test)
    other = load_source(tmp_path, validate=False, seed=1)
    assert _files(data.test) != _files(other.test)
    full = LabelledSet(data.train.samples + data.val.samples + data.test.samples, data.classes)
    shuffled = LabelledSet(tuple(reversed(full.samples)), full.classes)
    a = stratified_split(full, seed=5)
    b = stratified_split(shuffled, seed=5)
    assert {k: v.samples for k, v in a.items()} == {k: v.samples for k, v in b.items()}


def test_custom_fractions_and_record_round_trip(tmp_path: Path) -> None:
    make_class_folder(tmp_path, {"x": 40, "y": 12})
    src = load_source(tmp_path, fractions=SplitFractions.parse("75/25"), validate=False)
    assert src.val is None
    assert src.test is not None and src.test.class_counts == [10, 3]
    carved = SplitFractions.carve(test=0.25, val_of_train=0.1)
    assert (carved.train, carved.val, carved.test) == pytest.approx((0.675, 0.075, 0.25))
    rebuilt = apply_split_record(
        LabelledSet(src.train.samples + src.test.samples, src.classes, src.train.root), src.record
    )
    assert rebuilt["test"].samples == src.test.samples


@pytest.mark.parametrize("text", ["70/15", "a/b", "50/-10/60", "100"])
def test_bad_fraction_text_is_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"70/15/15|val \+ test < 1"):
        SplitFractions.parse(text) if text != "70/15" else SplitFractions(val=0.5, test=0.5)


def test_split_folders_used_as_given_and_val_carved_when_missing(tmp_path: Path) -> None:
    make_class_folder(tmp_path / "train", {"cat": 20, "dog": 20})
    make_class_folder(tmp_path / "test", {"cat": 2, "dog": 3})
    src = load_source(tmp_path, validate=False)
    assert src.kind == "split-folders" and src.classes == ("cat", "dog")
    assert src.test is not None and src.test.class_counts == [2, 3]
    assert src.val is not None and src.val.class_counts == [3, 3]  # 15% of train, stratified
    assert src.train.class_counts == [17, 17]
    assert src.record["mode"] == "given"
    # Files are recorded relative to the top folder, so equal names in two splits stay apart.
    assert src.record["splits"]["test"]["files"][0] == ["test/cat/img_000.png", "cat"]
    assert all(f.startswith("train/") for f, _ in src.record["splits"]["val"]["files"])
    make_class_folder(tmp_path / "val", {"cat": 1, "dog": 1})
    src = load_source(tmp_path, validate=False)
    assert src.val is not None and src.val.class_counts == [1, 1]
    assert src.train.class_counts == [20, 20] and src.record["seed"] is None


def test_split_folders_must_agree_on_classes(tmp_path: Path) -> None:
    make_class_folder(tmp_path / "train", {"cat": 4, "dog": 4})
    make_class_folder(tmp_path / "val", {"cat": 2, "dog": 2, "fox": 2})
    with pytest.raises(
        DataSourceError, match=r"val/ differ from train/: unseen in train \['fox'\]"
    ):
        load_source(tmp_path)


def test_csv_source_with_and_without_header(tmp_path: Path) -> None:
    for i in range(6):
        save_rgb(tmp_path / "img" / f"{i}.png", (i, i, i))
    rows = [f"img/{i}.png,{'10' if i % 2 else '9'}" for i in range(6)]
    (tmp_path / "plain.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "head.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    frac = SplitFractions(val=0.0, test=1 / 3)
    for name in ("plain.csv", "head.csv"):
        src = load_source(tmp_path / name, fractions=frac)
        assert src.kind == "csv"
        assert src.classes == ("9", "10")  # numeric labels sort as numbers
        assert src.train.class_counts == [2, 2] and src.test.class_counts == [1, 1]
        assert all(p.parent == tmp_path / "img" for p, _ in src.train.samples)


def test_csv_split_column_and_unseen_label(tmp_path: Path) -> None:
    for i in range(5):
        save_rgb(tmp_path / f"{i}.png", (i, 0, 0))
    ok = "path,label,split\n0.png,a,train\n1.png,b,train\n2.png,a,val\n3.png,b,test\n"
    (tmp_path / "ok.csv").write_text(ok)
    with pytest.warns(UserWarning) as caught:
        src = load_source(tmp_path / "ok.csv", validate=False)
    messages = sorted(str(w.message).split(": ")[-1] for w in caught)
    assert messages == [
        "class(es) ['a'] have no images in test",
        "class(es) ['b'] have no images in val",
    ]
    assert src.kind == "csv-splits" and [len(src.train), len(src.val), len(src.test)] == [2, 1, 1]
    (tmp_path / "bad.csv").write_text(ok + "4.png,c,test\n")
    with pytest.raises(DataSourceError, match=r"labels \['c'\] appear in test but never in train"):
        load_source(tmp_path / "bad.csv")


def test_csv_row_pointing_to_a_missing_file(tmp_path: Path) -> None:
    save_rgb(tmp_path / "here.png", (0, 0, 0))
    (tmp_path / "d.csv").write_text("here.png,a\ngone.png,b\n")
    with pytest.raises(DataSourceError, match=r"1 row\(s\) point to missing files \(line 2: gone"):
        load_source(tmp_path / "d.csv")


def test_empty_class_folder_stops_the_run(tmp_path: Path) -> None:
    make_class_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("x")
    with pytest.raises(DataSourceError, match=r"class folder .*c has no image files"):
        load_source(tmp_path)


def test_class_whose_only_images_are_corrupt(tmp_path: Path) -> None:
    make_class_folder(tmp_path, {"a": 3, "b": 3})
    save_corrupt(tmp_path / "c" / "x.jpg")
    with (
        pytest.warns(UserWarning),
        pytest.raises(DataSourceError, match=r"\['c'\] have no readable images"),
    ):
        load_source(tmp_path)


def test_only_one_class_stops_the_run(tmp_path: Path) -> None:
    make_class_folder(tmp_path, {"only": 5})
    with pytest.raises(DataSourceError, match=r"at least 2 classes, found 1 \(\['only'\]\)"):
        load_source(tmp_path)


def test_too_few_images_for_the_split(tmp_path: Path) -> None:
    make_class_folder(tmp_path, {"a": 10, "rare": 2})
    with pytest.raises(DataSourceError, match=r"at least 3 .*found \{'rare': 2\}"):
        load_source(tmp_path)
    # Without a val split two images are enough.
    src = load_source(tmp_path, fractions=SplitFractions(val=0.0, test=0.2))
    assert src.test is not None and src.test.class_counts == [2, 1]


def test_images_outside_class_folders_and_bad_paths(tmp_path: Path) -> None:
    save_rgb(tmp_path / "loose.png", (0, 0, 0))
    with pytest.raises(DataSourceError, match=r"no sub-folders \(1 image\(s\) directly in it\)"):
        load_source(tmp_path)
    with pytest.raises(DataSourceError, match="found nothing at"):
        load_source(tmp_path / "missing")
    with pytest.raises(ValueError, match="label_mode applies to the 'elpv' source only"):
        load_source(tmp_path, label_mode="binary")
