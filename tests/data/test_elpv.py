"""The real ELPV solar-cell set from the elpv-dataset package: counts, labels, stratification."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from effnet.data import (
    DataSourceError,
    ImageDataset,
    SourceSplits,
    SplitFractions,
    eval_transform,
    load_image,
    load_source,
)
from effnet.specs import PreprocessConfig

pytest.importorskip("elpv_dataset")

COUNTS_4CLASS = [1508, 295, 106, 715]


@pytest.fixture(scope="module")
def elpv4() -> SourceSplits:
    return load_source("elpv", label_mode="4class", seed=0)


def _all_counts(src: SourceSplits) -> list[int]:
    parts = [p for p in (src.train, src.val, src.test) if p is not None]
    return [sum(c) for c in zip(*(p.class_counts for p in parts))]


def test_four_class_counts_and_names(elpv4: SourceSplits) -> None:
    assert elpv4.kind == "elpv" and elpv4.classes == ("p0", "p33", "p67", "p100")
    assert _all_counts(elpv4) == COUNTS_4CLASS
    assert elpv4.num_skipped == 0 and elpv4.validation.checked == 2624
    # Files are read in place from the installed package, not copied.
    assert "elpv_dataset" in str(elpv4.train.samples[0][0])


def test_binary_labels_split_at_half() -> None:
    src = load_source("elpv", label_mode="binary", validate=False)
    assert src.classes == ("functional", "defective")
    assert _all_counts(src) == [1508 + 295, 106 + 715]


def test_split_is_stratified(elpv4: SourceSplits) -> None:
    fr = SplitFractions().as_dict()
    for name in ("train", "val", "test"):
        part = getattr(elpv4, name)
        for total, got in zip(COUNTS_4CLASS, part.class_counts):
            assert abs(got - total * fr[name]) <= 1, (name, part.class_counts)
    assert elpv4.record["splits"]["test"]["class_counts"] == {
        "p0": 226,
        "p33": 44,
        "p67": 16,
        "p100": 107,
    }


def test_same_seed_same_split_other_seed_other_split(elpv4: SourceSplits) -> None:
    again = load_source("elpv", seed=0, validate=False)
    assert again.record == elpv4.record
    other = load_source("elpv", seed=1, validate=False)
    assert other.test.class_counts == elpv4.test.class_counts
    assert other.record["splits"]["test"]["files"] != elpv4.record["splits"]["test"]["files"]


def test_paper_protocol_75_25(elpv4: SourceSplits) -> None:
    src = load_source("elpv", fractions=SplitFractions.parse("75/25"), validate=False)
    assert src.val is None and len(src.train) + len(src.test) == 2624
    assert len(src.train) == pytest.approx(1968, abs=2)  # Deitsch et al.: 1,968 training cells


def test_grayscale_cells_feed_a_three_channel_stem(elpv4: SourceSplits) -> None:
    path = elpv4.train.samples[0][0]
    px = np.asarray(load_image(path))
    assert px.shape == (300, 300, 3)
    assert (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all()
    ds = ImageDataset(elpv4.train, eval_transform(PreprocessConfig(input_size=32)))
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and y == elpv4.train.samples[0][1]
    assert not torch.equal(x[0], x[1])  # per-channel ImageNet normalisation still applies


def test_bad_label_mode_and_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="label_mode must be one of"):
        load_source("elpv", label_mode="3class")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "elpv_dataset" else real(name, *a),
    )
    with pytest.raises(DataSourceError, match=r"pip install elpv-dataset.*effnet\[elpv\]"):
        load_source("elpv")
