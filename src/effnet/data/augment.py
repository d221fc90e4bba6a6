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

Two options speak timm's and torchvision's reference scripts (:func:`auto_augment_transform`):

* ``auto_augment`` (``--aa``) replaces the preset's RandAugment, or adds one to ``light`` /
  ``flip``. Accepted, each mapped onto a torchvision v2 transform: timm's ``rand-m9-n2`` (magnitude
  M of timm's 0..10 scale -> ``RandAugment(num_ops=N, magnitude=M, num_magnitude_bins=11)``, the
  same fraction of each operation's maximum); torchvision's reference names ``ra``,
  ``ta_wide`` (also ``trivialaugment``), ``augmix`` and the AutoAugment policies ``imagenet``,
  ``cifar10``, ``svhn``. timm's per-operation magnitude noise (``mstd``), ``mmax``, ``inc`` and
  ``w`` have no torchvision counterpart: they are dropped with a warning (``mstd0.5`` moves a
  magnitude by about half a level). timm's ``augmix-m5-w4``, ``original`` and ``v0`` policies
  are timm's own operations and are refused rather than imitated.
* ``erase_prob`` (``--reprob``) sets the probability of torchvision's ``RandomErasing`` for any
  preset (``heavy``: 0.25 unless set). Erased patches are 0 after normalisation, the mean
  colour (timm's default ``--remode pixel`` fills them with noise instead).
"""

from __future__ import annotations

import functools
import logging
import re
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
    "AUTO_AUGMENT_NAMES",
    "PRESETS",
    "Preset",
    "auto_augment_transform",
    "check_augment",
    "is_deterministic",
    "train_transform",
]

log = logging.getLogger(__name__)

Preset = Literal["none", "flip", "light", "medium", "heavy"]
PRESETS: tuple[str, ...] = get_args(Preset)

RANDAUGMENT_BINS = 31  # torchvision's default: magnitudes 0..30, the paper's scale is 0..10+
DEFAULT_MAGNITUDE = 9
CROP_SCALE = (0.35, 1.0)
ERASE_PROB = 0.25
AUTO_AUGMENT_NAMES = ("rand-mM[-nN]", "ra", "ta_wide", "trivialaugment", "augmix", "imagenet",
                      "cifar10", "svhn")  # fmt: skip
_TIMM_RAND = re.compile(r"rand(-[a-z]+[\d.]+)+")
_DROPPED = {"mstd": "per-operation magnitude noise", "mmax": "a magnitude cap",
            "inc": "increasing-severity operations", "w": "operation weights"}  # fmt: skip


def auto_augment_transform(policy: str, interpolation: v2.InterpolationMode) -> v2.Transform:
    """The torchvision v2 transform for an auto-augment policy name (module docstring)."""
    name = policy.strip().lower()
    if name == "ra":
        return v2.RandAugment(magnitude=DEFAULT_MAGNITUDE, interpolation=interpolation)
    if name in ("ta_wide", "trivialaugment"):
        return v2.TrivialAugmentWide(interpolation=interpolation)
    if name == "augmix":
        # AugMix works on tensors, where torchvision's affine ops have no bicubic
        return v2.AugMix(interpolation=v2.InterpolationMode.BILINEAR)
    if name in ("imagenet", "cifar10", "svhn"):
        return v2.AutoAugment(v2.AutoAugmentPolicy(name), interpolation=interpolation)
    magnitude, num_ops, dropped = _timm_rand(policy)
    if dropped:
        _say_dropped(policy, ", ".join(dropped), magnitude)
    return v2.RandAugment(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=11,
                          interpolation=interpolation)  # fmt: skip


@functools.cache  # once per policy, not once per epoch
def _say_dropped(policy: str, dropped: str, magnitude: int) -> None:
    log.warning("--aa %s: torchvision's RandAugment has no %s; using magnitude %d of 10",
                policy, dropped, magnitude)  # fmt: skip


def _timm_rand(policy: str) -> tuple[int, int, list[str]]:
    """timm's ``rand-m9-n2-mstd0.5`` -> (magnitude of 10, operations, what is dropped)."""
    name = policy.strip().lower()
    if not _TIMM_RAND.fullmatch(name):
        raise ConfigError(
            f"unknown auto-augment policy {policy!r}; expected one of "
            f"{', '.join(AUTO_AUGMENT_NAMES)} (e.g. rand-m9-mstd0.5, timm's RandAugment)"
        )
    settings = dict(re.findall(r"-([a-z]+)([\d.]+)", name))
    dropped = [f"{key}{settings[key]} ({what})" for key, what in _DROPPED.items()
               if key in settings and float(settings[key]) != 0]  # fmt: skip
    unknown = sorted(set(settings) - {"m", "n", *_DROPPED})
    if unknown or "m" not in settings:
        raise ConfigError(
            f"{policy!r}: timm's RandAugment string needs m<magnitude> and takes n<ops>, mstd, "
            f"mmax, inc, w (got {', '.join(unknown) or 'no m'}); e.g. rand-m9-n2-mstd0.5"
        )
    magnitude, num_ops = float(settings["m"]), float(settings.get("n", 2))
    if magnitude != int(magnitude) or not 0 <= magnitude <= 10:
        raise ConfigError(f"{policy!r}: the magnitude is a whole number in 0..10, timm's scale")
    if num_ops != int(num_ops) or num_ops < 1:
        raise ConfigError(f"{policy!r}: n, the operations per image, is a whole number >= 1")
    return int(magnitude), int(num_ops), dropped


def check_augment(
    preset: str, magnitude: int | None = None, auto_augment: str | None = None
) -> None:
    """Raise :class:`ConfigError` unless the preset, the RandAugment magnitude and the
    auto-augment policy make one pipeline (a config checks this before a run starts)."""
    _check_preset(preset)
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
    if not auto_augment:
        return
    if auto_augment.strip().lower() not in AUTO_AUGMENT_NAMES[1:]:
        _timm_rand(auto_augment)
    if preset == "none":
        raise ConfigError(
            "auto-augment needs a random preset: augment none is the fixed eval view; use "
            "--augment light (flips and crops) or medium with --aa"
        )
    if magnitude is not None:
        raise ConfigError(
            f"magnitude sets the preset's RandAugment, and auto-augment {auto_augment!r} "
            f"replaces it: pass one of them (rand-m<M> carries its own magnitude)"
        )


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
    auto_augment: str | None = None,
    erase_prob: float | None = None,
) -> v2.Compose:
    """The train pipeline for ``preset``.

    ``preprocess`` is the weights' :class:`PreprocessConfig` (its interpolation and mean/std are
    reused) or a bare image size (ImageNet mean/std, bicubic). ``size`` overrides the output size
    for progressive learning; ``magnitude`` (0..30) overrides RandAugment's strength for the
    ``medium`` and ``heavy`` presets. ``flip`` is the eval view with random flips only (no
    crop can cut a small defect out of the picture). ``vflip`` adds vertical flips
    (top/bottom-symmetric data such as solar cells or micrographs) to the random presets.
    ``auto_augment`` (an :func:`auto_augment_transform` policy) replaces the preset's RandAugment;
    ``erase_prob`` sets the random-erasing probability (default: the preset's).
    """
    check_augment(preset, magnitude, auto_augment)
    cfg = PreprocessConfig(input_size=preprocess) if isinstance(preprocess, int) else preprocess
    if not isinstance(cfg, PreprocessConfig):
        raise TypeError(
            f"preprocess must be a PreprocessConfig or an image size (int), got "
            f"{type(preprocess).__name__}; pass model.preprocess"
        )
    out = cfg.input_size if size is None else size
    if out < 8:
        raise ConfigError(f"size must be >= 8 pixels, got {out}")
    if erase_prob is not None and not 0.0 <= erase_prob <= 1.0:
        raise ConfigError(f"the random-erasing probability must be in [0, 1], got {erase_prob}")
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
        steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2))
        if not auto_augment:
            steps.append(
                v2.RandAugment(
                    num_ops=2,
                    magnitude=DEFAULT_MAGNITUDE if magnitude is None else magnitude,
                    num_magnitude_bins=RANDAUGMENT_BINS,
                    interpolation=interp,
                )
            )
    if auto_augment:
        steps.append(auto_augment_transform(auto_augment, interp))
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if erase_prob is None:
        erase_prob = ERASE_PROB if preset == "heavy" else 0.0
    if erase_prob > 0:
        # After Normalize, value 0 is the dataset mean: erased patches carry no colour cue.
        steps.append(v2.RandomErasing(p=erase_prob, value=0))
    return v2.Compose(steps)
