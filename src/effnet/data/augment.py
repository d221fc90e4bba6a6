"""Train-time augmentation presets (torchvision transforms v2), one name per strength.

=========  ================================================================================
preset     steps (all end with ToImage -> float [0, 1] -> Normalize(mean, std))
=========  ================================================================================
none       resize short side + center crop: deterministic, the eval pipeline at train size
light      RandomResizedCrop(scale=(0.35, 1)) + horizontal flip (+ vertical flip if asked)
medium     light + ColorJitter(0.2, 0.2, 0.2) + RandAugment(num_ops=2, magnitude=9)
heavy      medium + RandomErasing(p=0.25) on the normalised tensor
=========  ================================================================================

The crop scale starts at 0.35 rather than ImageNet's 0.08: fine-tuning sets are small and
their subjects often fill the frame (a solar cell, a leaf), so an 8% crop is mostly a crop of
nothing. ``magnitude`` is exposed because progressive learning raises it stage by stage.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torchvision.transforms import v2

from effnet.data.transforms import (
    ConvertChannels,
    interpolation_mode,
    normalize_stats,
    resolve_in_chans,
)
from effnet.errors import ConfigError
from effnet.specs import PreprocessConfig

__all__ = [
    "PRESETS",
    "Preset",
    "is_deterministic",
    "train_transform",
]

Preset = Literal["none", "flip", "light", "medium", "heavy"]
PRESETS: tuple[str, ...] = get_args(Preset)

RANDAUGMENT_BINS = 31  # torchvision's default: magnitudes 0..30, the paper's scale is 0..10+
DEFAULT_MAGNITUDE = 9
CROP_SCALE = (0.35, 1.0)
ERASE_PROB = 0.25


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ConfigError(
            f"unknown augmentation preset {preset!r}; expected one of {', '.join(PRESETS)}"
        )


def is_deterministic(preset: str) -> bool:
    """Whether ``preset`` maps an image to the same tensor every epoch.

    Phase-1 fine-tuning (frozen trunk) caches features once only when this is True.
    """
    _check_preset(preset)
    return preset == "none"


def train_transform(
    preprocess: PreprocessConfig | int,
    preset: str = "light",
    *,
    magnitude: int | None = None,
    size: int | None = None,
    vflip: bool = False,
    in_chans: int = 3,
) -> v2.Compose:
    """The train pipeline for ``preset``.

    ``preprocess`` is the weights' :class:`PreprocessConfig` (its interpolation and mean/std are
    reused) or a bare image size (ImageNet mean/std, bicubic). ``size`` overrides the output size
    for progressive learning; ``magnitude`` (0..30) overrides RandAugment's strength for the
    ``medium`` and ``heavy`` presets. ``flip`` is the eval view with random flips only (no
    crop can cut a small defect out of the picture). ``vflip`` adds vertical flips
    (top/bottom-symmetric data such as solar cells or micrographs) to the random presets.
    """
    _check_preset(preset)
    cfg = PreprocessConfig(input_size=preprocess) if isinstance(preprocess, int) else preprocess
    if not isinstance(cfg, PreprocessConfig):
        raise TypeError(
            f"preprocess must be a PreprocessConfig or an image size (int), got "
            f"{type(preprocess).__name__}; pass model.preprocess"
        )
    out = cfg.input_size if size is None else size
    if out < 8:
        raise ConfigError(f"size must be >= 8 pixels, got {out}")
    if magnitude is not None:
        if preset not in ("medium", "heavy"):
            raise ConfigError(
                f"magnitude only applies to the RandAugment presets (medium, heavy), got "
                f"preset {preset!r}; drop magnitude or pick one of those"
            )
        if not 0 <= magnitude < RANDAUGMENT_BINS:
            raise ConfigError(
                f"RandAugment magnitude must be in [0, {RANDAUGMENT_BINS - 1}], got {magnitude}"
            )
    interp = interpolation_mode(cfg.interpolation)
    chans = resolve_in_chans(None, in_chans)
    mean, std = normalize_stats(cfg, chans)

    steps: list[object] = [ConvertChannels(chans)]
    if preset in ("none", "flip"):
        # Keep the weights' resize/crop ratio at whatever size progressive learning asks for.
        resize = round(cfg.resize_size * out / cfg.input_size)
        steps += [v2.Resize(resize, interpolation=interp, antialias=True), v2.CenterCrop(out)]
        if preset == "flip":  # the eval view, flipped: no crop can cut a small defect out
            steps.append(v2.RandomHorizontalFlip())
            if vflip:
                steps.append(v2.RandomVerticalFlip())
    else:
        steps += [
            v2.RandomResizedCrop(out, scale=CROP_SCALE, interpolation=interp, antialias=True),
            v2.RandomHorizontalFlip(),
        ]
        if vflip:
            steps.append(v2.RandomVerticalFlip())
    if preset in ("medium", "heavy"):
        steps += [
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
            v2.RandAugment(
                num_ops=2,
                magnitude=DEFAULT_MAGNITUDE if magnitude is None else magnitude,
                num_magnitude_bins=RANDAUGMENT_BINS,
                interpolation=interp,
            ),
        ]
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if preset == "heavy":
        # After Normalize, value 0 is the dataset mean: erased patches carry no colour cue.
        steps.append(v2.RandomErasing(p=ERASE_PROB, value=0))
    return v2.Compose(steps)
