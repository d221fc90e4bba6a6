"""Every image is decoded once before training, what was decoded is kept for the run, and no
loader ever stands another sample in for an unreadable one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_images import make_class_folder, save_truncated_jpeg
from torch.utils.data import DataLoader

from effnet.data import (
    ImageDataset,
    LabelledSet,
    SplitFractions,
    UnreadableImageError,
    eval_transform,
    list_images,
    load_image,
    load_source,
    validate_set,
)
from effnet.data.images import DecodedImages
from effnet.errors import EffnetError
from effnet.specs import PreprocessConfig

TINY = PreprocessConfig(input_size=16, crop_pct=1.0)


@pytest.fixture
def tiny_set(tmp_path: Path) -> LabelledSet:
    root = make_class_folder(tmp_path, {"a": 3, "b": 3})
    files = list_images(root)
    return LabelledSet(tuple((f, int(f.parent.name == "b")) for f in files), ("a", "b"), root)


def test_a_file_broken_after_the_check_fails_loudly_never_substituted(
    tiny_set: LabelledSet,
) -> None:
    """``effnet evaluate`` once scored a truncated file as a copy of its neighbour."""
    ds = ImageDataset(tiny_set, eval_transform(TINY))
    save_truncated_jpeg(tiny_set.samples[1][0])  # broken on disk after the up-front check
    with pytest.raises(UnreadableImageError) as info:
        ds[1]
    assert info.value.path == tiny_set.samples[1][0]
    message = str(info.value)
    assert str(tiny_set.samples[1][0]) in message and "truncated" in message
    assert isinstance(info.value, EffnetError)


def test_loader_worker_failure_reaches_the_caller_as_the_same_error(
    tiny_set: LabelledSet,
) -> None:
    save_truncated_jpeg(tiny_set.samples[3][0])
    loader = DataLoader(ImageDataset(tiny_set, eval_transform(TINY)), batch_size=3, num_workers=1)
    with pytest.raises(UnreadableImageError) as info:
        list(loader)
    message = str(info.value)
    assert str(tiny_set.samples[3][0]) in message and "Traceback" not in message


def test_validate_set_decodes_everything_and_keeps_it(tiny_set: LabelledSet) -> None:
    save_truncated_jpeg(tiny_set.samples[5][0])
    images = DecodedImages()
    with pytest.warns(UserWarning, match="skipping 1 file"):
        kept, report = validate_set(tiny_set, images=images)
    assert len(kept) == 5 and report.num_skipped == 1 and report.checked == 6
    assert "truncated" in report.skipped[0].reason
    assert len(images) == 5 and tiny_set.samples[5][0] not in images


def test_load_source_keeps_the_decoded_images_for_the_run(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    src = load_source(root, fractions=SplitFractions(val=0.0, test=0.25), keep_images=True)
    assert isinstance(src.images, DecodedImages) and len(src.images) == 8
    path = src.train.samples[0][0]
    expected = load_image(path)
    path.unlink()  # served from memory: the run never reads the file again
    got = src.images(path)
    assert got.tobytes() == expected.tobytes() and got.mode == "RGB"
    got.paste((0, 0, 0), (0, 0, 4, 4))  # callers get a copy: the kept image is unchanged
    assert src.images(path).tobytes() == expected.tobytes()
    # a drop-in loader for ImageDataset
    x, _ = ImageDataset(src.train, eval_transform(TINY), loader=src.images)[0]
    assert x.shape == (3, 16, 16)
    assert load_source(root, fractions=SplitFractions(val=0.0, test=0.25)).images is None


def test_decoded_images_respect_their_memory_budget(tiny_set: LabelledSet) -> None:
    one = 16 * 16 * 3
    images = DecodedImages(max_bytes=2 * one)
    validate_set(tiny_set, images=images)
    assert len(images) == 2 and images.nbytes == 2 * one
    # what did not fit is decoded on use, and a broken file still fails loudly
    far = tiny_set.samples[4][0]
    assert far not in images and images(far).size == (16, 16)
    save_truncated_jpeg(far)
    with pytest.raises(UnreadableImageError):
        images(far)


def test_decoded_images_prefill_reports_failures(tiny_set: LabelledSet) -> None:
    save_truncated_jpeg(tiny_set.samples[0][0])
    images = DecodedImages()
    failed = images.prefill([p for p, _ in tiny_set.samples])
    assert [f.path for f in failed] == [tiny_set.samples[0][0]]
    assert len(images) == 5


def test_a_decompression_bomb_is_skipped_not_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_class_folder(tmp_path / "ds", {"a": 4, "b": 4})
    Image.new("L", (64, 64)).save(root / "a" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 * 64 > 2 * 1000
    with pytest.warns(UserWarning, match="skipping 1"):
        src = load_source(root, fractions=SplitFractions(val=0.0, test=0.25))
    assert [s.path.name for s in src.validation.skipped] == ["bomb.png"]
    assert "decompression bomb" in src.validation.skipped[0].reason.lower()


def test_dataset_returns_tensors(tiny_set: LabelledSet) -> None:
    x, y = ImageDataset(tiny_set, eval_transform(TINY))[4]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 1


def test_grayscale_pictures_are_kept_compact_and_returned_exactly(tmp_path: Path) -> None:
    gray = tmp_path / "g.png"
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(gray)
    images = DecodedImages()
    assert images.prefill([gray]) == []
    assert images.nbytes == 16 * 16  # one channel, not three
    got = images(gray)
    assert got.mode == "RGB" and got.tobytes() == load_image(gray).tobytes()


def test_a_picture_decoded_on_first_use_is_kept_unedited(tiny_set: LabelledSet) -> None:
    images = DecodedImages()
    path = tiny_set.samples[0][0]
    first = images(path)  # not prefilled: decoded now, kept, handed out as a copy
    first.paste((1, 2, 3), (0, 0, 16, 16))
    assert images(path).tobytes() == load_image(path).tobytes()


def test_kept_pictures_can_be_shrunk_for_small_training_sizes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for name in ("a", "b"):
        for i in range(4):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 48), (i, 9, 99 if name == "a" else 7)).save(
                root / name / f"{i}.png"
            )
    images = DecodedImages(max_side=24)
    src = load_source(root, fractions=SplitFractions(val=0.0, test=0.25), keep_images=images)
    assert src.images is images and len(images) == 8
    assert images(src.train.samples[0][0]).size == (32, 24)
