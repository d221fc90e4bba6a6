"""Train presets (shape, determinism, options) and batch-level Mixup/CutMix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from effnet.data import (
    PRESETS,
    MixupCutmix,
    eval_transform,
    is_deterministic,
    one_hot,
    train_transform,
)
from effnet.specs import PreprocessConfig


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_give_normalised_float_tensors_of_the_train_size(
    preset: str, picture: Image.Image
) -> None:
    out = train_transform(24, preset)(picture)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    # Normalised with ImageNet stats: values leave [0, 1] on both sides.
    assert out.min() < 0 and out.max() > 1


def test_none_is_deterministic_and_equals_eval_at_the_same_size(picture: Image.Image) -> None:
    cfg = PreprocessConfig(input_size=24, crop_pct=0.75)
    t = train_transform(cfg, "none")
    torch.manual_seed(1)
    a = t(picture)
    torch.manual_seed(2)
    b = t(picture)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(a, eval_transform(cfg)(picture))
    assert is_deterministic("none")


@pytest.mark.parametrize("preset", ["flip", "light", "medium", "heavy"])
def test_random_presets_vary_between_draws(preset: str, picture: Image.Image) -> None:
    t = train_transform(24, preset)
    outs = []
    for seed in range(3):
        torch.manual_seed(seed)
        outs.append(t(picture))
    assert not torch.equal(outs[0], outs[1]) or not torch.equal(outs[1], outs[2])
    assert not is_deterministic(preset)
    torch.manual_seed(0)
    again = t(picture)
    torch.testing.assert_close(again, outs[0], atol=0, rtol=0)  # seeded -> reproducible


def test_flip_is_the_eval_view_flipped_never_cropped(picture: Image.Image) -> None:
    """ "flip" keeps every pixel of the eval view (a crop could cut a small defect out)."""
    cfg = PreprocessConfig(input_size=24)
    view = eval_transform(cfg)(picture)
    flips = [view, view.flip(-1), view.flip(-2), view.flip(-2, -1)]
    t = train_transform(cfg, "flip", vflip=True)
    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        out = t(picture)
        matches = [i for i, f in enumerate(flips) if torch.allclose(out, f, atol=1e-6)]
        assert len(matches) >= 1
        seen.update(matches)
    assert seen == {0, 1, 2, 3}  # all four flips occur
    only_h = [type(s).__name__ for s in train_transform(cfg, "flip").transforms]
    assert "RandomHorizontalFlip" in only_h and "RandomVerticalFlip" not in only_h


def test_size_override_keeps_weights_statistics(picture: Image.Image) -> None:
    cfg = PreprocessConfig(input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    out = train_transform(cfg, "light", size=16)(picture)
    assert out.shape == (3, 16, 16)
    assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6  # mean = std = 0.5 -> [-1, 1]


def test_magnitude_overrides_randaugment_and_is_validated() -> None:
    t = train_transform(24, "medium", magnitude=15)
    assert [s.magnitude for s in t.transforms if type(s).__name__ == "RandAugment"] == [15]
    with pytest.raises(ValueError, match=r"magnitude must be in \[0, 30\], got 31"):
        train_transform(24, "heavy", magnitude=31)
    with pytest.raises(ValueError, match="only applies to the RandAugment presets"):
        train_transform(24, "light", magnitude=5)


def test_heavy_erases_after_normalising_and_vflip_is_optional() -> None:
    names = [type(s).__name__ for s in train_transform(24, "heavy").transforms]
    assert names[-2:] == ["Normalize", "RandomErasing"]
    assert "RandomVerticalFlip" not in names
    assert "RandomVerticalFlip" in [
        type(s).__name__ for s in train_transform(24, "light", vflip=True).transforms
    ]


def test_grayscale_training_for_one_channel_models(picture: Image.Image) -> None:
    assert train_transform(24, "medium", in_chans=1)(picture).shape == (1, 24, 24)


def test_unknown_preset_is_named() -> None:
    with pytest.raises(ValueError, match=r"preset 'strong'.*none, flip, light"):
        train_transform(24, "strong")
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        is_deterministic("strong")


# -- Mixup / CutMix -------------------------------------------------------------------------


def _constant_batch(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is filled with value i and has label i, so a mix is readable from its pixels."""
    images = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 3, 16, 16)
    return images.clone(), torch.arange(n)


def test_one_hot_smoothing_matches_cross_entropy_convention() -> None:
    t = one_hot(torch.tensor([2, 0]), 4, smoothing=0.2)
    torch.testing.assert_close(t[0], torch.tensor([0.05, 0.05, 0.85, 0.05]))
    torch.testing.assert_close(t.sum(1), torch.ones(2))


def test_alpha_zero_is_identity_with_smoothed_one_hot_targets() -> None:
    images, labels = _constant_batch()
    mix = MixupCutmix(6, mixup_alpha=0, cutmix_alpha=0, label_smoothing=0.1, seed=0)
    out, targets = mix(images, labels)
    assert out is images
    torch.testing.assert_close(targets, one_hot(labels, 6, 0.1))


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_targets_match_the_pixels_that_were_mixed(mixup: float, cutmix: float) -> None:
    mix = MixupCutmix(6, mixup, cutmix, label_smoothing=0.0, seed=3)
    for _ in range(5):
        images, labels = _constant_batch()
        out, targets = mix(images, labels)
        torch.testing.assert_close(targets.sum(1), torch.ones(6))
        # Mean pixel of each mixed image = target-weighted image values (lam is the real area).
        torch.testing.assert_close(out.mean(dim=(1, 2, 3)), targets @ torch.arange(6.0))
        assert not torch.equal(out, images)


def test_smoothed_mixed_targets_still_sum_to_one() -> None:
    images, labels = _constant_batch()
    _, targets = MixupCutmix(6, 0.8, 1.0, label_smoothing=0.1, seed=1)(images, labels)
    torch.testing.assert_close(targets.sum(1), torch.ones(6))
    assert targets.min() > 0


def test_seeded_and_alphas_can_change_between_stages() -> None:
    images, labels = _constant_batch()
    a = MixupCutmix(6, 0.5, 1.0, seed=7)(images, labels)
    b = MixupCutmix(6, 0.5, 1.0, seed=7)(images, labels)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    mix = MixupCutmix(6, 0.0, 0.0, seed=7)
    assert mix(images, labels)[0] is images
    mix.set_alphas(0.4, 0.0)  # a later progressive-learning stage turns mixup on
    assert not torch.equal(mix(images, labels)[0], images)
    with pytest.raises(ValueError, match="alphas must be >= 0"):
        mix.set_alphas(-1, 0)


def test_prob_zero_never_mixes() -> None:
    images, labels = _constant_batch()
    mix = MixupCutmix(6, 1.0, 1.0, prob=0.0, label_smoothing=0.0)
    out, targets = mix(images, labels)
    assert out is images and torch.equal(targets, one_hot(labels, 6))
