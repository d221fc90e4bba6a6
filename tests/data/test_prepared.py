"""Pictures prepared once per size (effnet.data.prepared): the batches are the tensors the
per-image pipeline gives, image for image; only qualifying pipelines take that path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from effnet.data import eval_transform, load_source, train_transform
from effnet.data.prepared import PreparedLoader, split_pipeline
from effnet.data.splits import SplitFractions
from effnet.factory import create_model
from effnet.train.distributed import init_distributed
from effnet.train.loaders import make_loader
from helpers.images import make_folder

NO_SPLIT = SplitFractions(val=0.0, test=0.0)


def _mixed_sizes(root: Path) -> Path:
    """RGB pictures of several sizes and aspect ratios: the resize and crop matter."""
    rng = np.random.default_rng(1)
    for label, shapes in {"a": [(50, 70), (64, 64), (90, 41)], "b": [(33, 80), (120, 60)]}.items():
        (root / label).mkdir(parents=True)
        for i, (h, w) in enumerate(shapes):
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def _gray(root: Path) -> Path:
    """8-bit grayscale pictures (kept as one channel by the image cache)."""
    rng = np.random.default_rng(2)
    for label in ("dark", "light"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, size=(37 + i, 45), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / label / f"{i}.png")
    return root


def _per_image(data, transform):  # type: ignore[no-untyped-def]
    loader = make_loader(data.train, transform, init_distributed("cpu"), batch_size=3, workers=0)
    assert not isinstance(loader, PreparedLoader)  # no decoded pictures: image by image
    return torch.cat([x for x, _ in loader])


@pytest.mark.parametrize("kind", ["rgb", "gray", "one-channel model"])
def test_prepared_batches_are_the_pipeline_tensors(tmp_path: Path, kind: str) -> None:
    root = _gray(tmp_path / "ds") if kind == "gray" else _mixed_sizes(tmp_path / "ds")
    data = load_source(root, fractions=NO_SPLIT, keep_images=True)
    model = create_model("tf_efficientnet_lite0", in_chans=1 if kind == "one-channel model" else 3)
    model.preprocess = model.preprocess.with_cfg({"input_size": (3, 48, 48), "crop_pct": 0.8})
    transform = eval_transform(model)
    fast = make_loader(data.train, transform, init_distributed("cpu"), batch_size=3,
                       images=data.images)  # fmt: skip
    assert isinstance(fast, PreparedLoader) and len(fast) == -(len(data.train) // -3)
    got = torch.cat([x for x, _ in fast])
    want = _per_image(data, transform)
    assert got.shape == want.shape == (len(data.train), model.in_chans, 48, 48)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    if kind == "gray":  # kept as one channel, handed out as three equal ones
        prepared = next(iter(data.images.prepared.values()))
        assert prepared.tensor.shape[1] == 1
        assert torch.equal(got[:, 0], got[:, 2])


def test_flips_are_the_pipeline_flips_drawn_per_seed(tmp_path: Path) -> None:
    data = load_source(_mixed_sizes(tmp_path / "ds"), fractions=NO_SPLIT, keep_images=True)
    ctx = init_distributed("cpu")
    flip = train_transform(48, "flip", vflip=True)
    plain = _per_image(data, train_transform(48, "none"))

    def epoch(seed: int) -> torch.Tensor:
        loader = make_loader(data.train, flip, ctx, batch_size=5, seed=seed, images=data.images,
                             whole_epoch=True)  # fmt: skip
        order = [i for batch in loader.batch_sampler for i in batch]
        out = torch.cat([x for x, _ in loader])
        return out[torch.argsort(torch.tensor(order))]  # back to dataset order

    views = []
    for seed in range(6):
        x = epoch(seed)
        for i in range(len(x)):
            found = [
                k for k, dims in enumerate([(), (-1,), (-2,), (-2, -1)])
                if torch.allclose(x[i], plain[i].flip(dims) if dims else plain[i], atol=1e-6)
            ]  # fmt: skip
            assert found, "every image is one of its four flips"
            views.append(found[0])
    assert set(views) == {0, 1, 2, 3}  # both coins are thrown
    assert torch.equal(epoch(3), epoch(3))  # the seed fixes them


@pytest.mark.parametrize("preset", ["light", "medium"])
def test_random_crops_run_image_by_image(tmp_path: Path, preset: str) -> None:
    assert split_pipeline(train_transform(48, preset)) is None
    assert split_pipeline(train_transform(48, "flip")) is not None
    assert split_pipeline(train_transform(48, "none")) is not None
    data = load_source(_mixed_sizes(tmp_path / "ds"), fractions=NO_SPLIT, keep_images=True)
    loader = make_loader(data.train, train_transform(48, preset), init_distributed("cpu"),
                         batch_size=2, seed=0, workers=0, images=data.images)  # fmt: skip
    assert not isinstance(loader, PreparedLoader)


def test_a_training_loader_drops_the_same_batches_either_way(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "ds", per_class=11, size=20)  # 33 images
    data = load_source(root, fractions=NO_SPLIT, keep_images=True)
    ctx = init_distributed("cpu")
    kwargs = dict(batch_size=8, seed=4, workers=0)
    fast = make_loader(data.train, train_transform(32, "none"), ctx, images=data.images, **kwargs)
    slow = make_loader(data.train, train_transform(32, "none"), ctx, **kwargs)
    assert isinstance(fast, PreparedLoader)
    assert len(fast) == len(slow) == 4  # 33 images: the partial last batch is dropped
    assert list(fast.batch_sampler) == list(slow.batch_sampler)
    labels_fast = torch.cat([y for _, y in fast])
    labels_slow = torch.cat([y for _, y in slow])
    assert torch.equal(labels_fast, labels_slow)
