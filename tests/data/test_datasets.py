"""ImageDataset, validate_set, class-balance helpers (load-time faults: test_decode_upfront)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from tiny_images import make_class_folder, save_corrupt
from torch.utils.data import DataLoader

from effnet.data import (
    ImageDataset,
    LabelledSet,
    balanced_sampler,
    class_counts,
    class_weights,
    eval_transform,
    list_images,
    load_source,
    validate_set,
)
from effnet.specs import PreprocessConfig

TINY = PreprocessConfig(input_size=16, crop_pct=1.0)


@pytest.fixture
def tiny_set(tmp_path: Path) -> LabelledSet:
    root = make_class_folder(tmp_path, {"a": 3, "b": 3})
    files = list_images(root)
    return LabelledSet(tuple((f, int(f.parent.name == "b")) for f in files), ("a", "b"), root)


def test_dataset_returns_transformed_tensor_and_label(tiny_set: LabelledSet) -> None:
    ds = ImageDataset(tiny_set, eval_transform(TINY))
    x, y = ds[4]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 1
    assert ds.classes == ("a", "b") and len(ds) == 6


def test_validate_set_reports_and_drops(tiny_set: LabelledSet) -> None:
    save_corrupt(tiny_set.samples[5][0])
    with pytest.warns(UserWarning, match="skipping 1 file"):
        kept, report = validate_set(tiny_set)
    assert len(kept) == 5 and report.num_skipped == 1 and report.checked == 6
    assert report.to_dict()["skipped_files"][0] == {
        "path": str(tiny_set.samples[5][0]),
        "reason": report.skipped[0].reason,
        "class": "b",
    }


def test_labelled_set_rejects_out_of_range_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"label indices must be in \[0, 2\)"):
        LabelledSet(((tmp_path / "x.png", 2),), ("a", "b"))


def test_class_weights_are_inverse_frequency() -> None:
    counts = [1508, 295, 106, 715]
    w = class_weights(counts)
    expected = torch.tensor([2624 / (4 * n) for n in counts])
    torch.testing.assert_close(w, expected)
    # Every class carries the same total weight, and the mean sample weight stays 1.
    torch.testing.assert_close(
        w * torch.tensor(counts, dtype=torch.float32), torch.full((4,), 656.0)
    )
    torch.testing.assert_close(class_weights([5, 5, 5]), torch.ones(3))
    torch.testing.assert_close(
        class_weights([100, 25], power=0.5), torch.tensor([0.625, 2.5]) ** 0.5
    )
    with pytest.raises(ValueError, match=r"at least one sample.*\[3, 0\]"):
        class_weights([3, 0])


def test_class_counts_from_labels_or_set(tiny_set: LabelledSet) -> None:
    assert class_counts([0, 2, 2]) == [1, 0, 2]
    assert class_counts(tiny_set) == [3, 3]
    with pytest.raises(ValueError, match="outside"):
        class_counts([0, 3], num_classes=2)


def test_balanced_sampler_is_seeded_and_balances_classes() -> None:
    labels = [0] * 90 + [1] * 10
    draws = list(balanced_sampler(labels, num_samples=4000, seed=3))
    share = Counter(labels[i] for i in draws)[1] / len(draws)
    assert 0.45 < share < 0.55  # 10% of the data, half of the draws
    assert draws == list(balanced_sampler(labels, num_samples=4000, seed=3))
    assert draws != list(balanced_sampler(labels, num_samples=4000, seed=4))
    assert len(list(balanced_sampler(labels))) == 100  # one epoch by default


def test_a_real_loader_over_a_folder_source(tmp_path: Path) -> None:
    src = load_source(make_class_folder(tmp_path, {"a": 7, "b": 7}), validate=False)
    loader = DataLoader(ImageDataset(src.train, eval_transform(TINY)), batch_size=4)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 16, 16) and y.dtype == torch.int64
