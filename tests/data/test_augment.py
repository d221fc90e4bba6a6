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


def test_mixing_is_torchvisions_and_its_draws_leave_the_global_generator_alone() -> None:
    """The same batch through torchvision's MixUp with the same stream gives the same result;
    the global generator (dropout, drop-path) is neither used nor advanced by the mixing."""
    from torchvision.transforms import v2

    images, labels = _constant_batch()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    mix = MixupCutmix(6, 0.8, 0.0, label_smoothing=0.0, seed=5)
    out, targets = mix(images, labels)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(5)
    torch.rand(())  # the draw that decides whether this batch is mixed (prob)
    ref, ref_targets = v2.MixUp(alpha=0.8, num_classes=6)(images, labels)
    torch.testing.assert_close(out, ref, atol=0, rtol=0)
    torch.testing.assert_close(targets, ref_targets)


@pytest.mark.parametrize(
    ("policy", "kind"),
    [
        ("rand-m9-mstd0.5", "RandAugment"),
        ("rand-m7-n3", "RandAugment"),
        ("ra", "RandAugment"),
        ("ta_wide", "TrivialAugmentWide"),
        ("trivialaugment", "TrivialAugmentWide"),
        ("augmix", "AugMix"),
        ("imagenet", "AutoAugment"),
    ],
)
def test_auto_augment_names_map_onto_torchvision(
    policy: str, kind: str, picture: Image.Image
) -> None:
    t = train_transform(24, "light", auto_augment=policy)
    names = [type(step).__name__ for step in t.transforms]
    assert kind in names and names.count("RandAugment") <= 1
    assert t(picture).shape == (3, 24, 24)


def test_timms_rand_string_keeps_its_magnitude_fraction(caplog: pytest.LogCaptureFixture) -> None:
    from torchvision.transforms import v2

    from effnet.data.augment import auto_augment_transform

    ra = auto_augment_transform("rand-m9-n3-mstd0.5", v2.InterpolationMode.BICUBIC)
    assert (ra.num_ops, ra.magnitude, ra.num_magnitude_bins) == (3, 9, 11)  # 9/10 of the maximum
    assert "mstd0.5" in caplog.text  # dropped, and said so
    medium = train_transform(24, "medium", auto_augment="rand-m5")
    kinds = [type(s).__name__ for s in medium.transforms]
    assert kinds.count("RandAugment") == 1  # the preset's own is replaced


@pytest.mark.parametrize(
    ("policy", "preset", "magnitude", "message"),
    [
        ("augmix-m5-w4", "light", None, "unknown auto-augment"),
        ("v0", "light", None, "unknown auto-augment"),
        ("rand-m12", "light", None, "0..10"),
        ("rand-n2", "light", None, "needs m"),
        ("rand-m9", "none", None, "needs a random preset"),
        ("rand-m9", "medium", 5, "pass one of them"),
    ],
)
def test_auto_augment_refuses_what_it_cannot_map(
    policy: str, preset: str, magnitude: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        train_transform(24, preset, auto_augment=policy, magnitude=magnitude)


def test_random_erasing_probability_for_any_preset() -> None:
    def erasing(t: object) -> list[float]:
        return [s.p for s in t.transforms if type(s).__name__ == "RandomErasing"]

    assert erasing(train_transform(24, "heavy")) == [0.25]
    assert erasing(train_transform(24, "heavy", erase_prob=0.0)) == []
    assert erasing(train_transform(24, "light", erase_prob=0.4)) == [0.4]
    assert erasing(train_transform(24, "light")) == []
