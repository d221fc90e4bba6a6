"""Eval preprocessing bound to weights: the exact resize / crop / normalise a checkpoint expects.

A checkpoint evaluated with another checkpoint's preprocessing can lose several points of
accuracy, so the pipeline is never assembled by hand: :func:`eval_transform` reads it from the
:class:`~effnet.specs.PreprocessConfig` carried by a model or a weights record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import v2

from effnet.data.images import to_rgb
from effnet.errors import ConfigError
from effnet.specs import PreprocessConfig

__all__ = [
    "ConvertChannels",
    "eval_transform",
    "interpolation_mode",
    "normalize_stats",
    "resolve_in_chans",
    "resolve_preprocess",
]

_INTERPOLATION = {
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
    "nearest": v2.InterpolationMode.NEAREST,
}


def resolve_preprocess(obj: object) -> PreprocessConfig:
    """The :class:`PreprocessConfig` of ``obj``.

    Accepts a ``PreprocessConfig``; anything with a ``.preprocess`` that is one (a model, a
    weights record, a ``ModelSpec`` whose ``default_preprocess`` is used when ``.preprocess`` is
    None); or the ``PreprocessConfig.to_dict()`` mapping saved next to a run.
    """
    if isinstance(obj, PreprocessConfig):
        return obj
    if isinstance(obj, Mapping):
        return PreprocessConfig.from_dict(dict(obj))
    found = getattr(obj, "preprocess", None)
    if found is None:
        found = getattr(obj, "default_preprocess", None)
    if isinstance(found, PreprocessConfig):
        return found
    raise TypeError(
        "expected a PreprocessConfig, or a model / weights record with a .preprocess "
        f"PreprocessConfig, got {type(obj).__name__} (its .preprocess is {found!r}); pass "
        "model.preprocess or build one with effnet.specs.PreprocessConfig(input_size=...)"
    )


def resolve_in_chans(obj: object, in_chans: int | None = None) -> int:
    """Input channels: the explicit argument, else ``obj.in_chans`` (models), else 3."""
    chans = in_chans if in_chans is not None else getattr(obj, "in_chans", 3)
    if not isinstance(chans, int) or chans not in (1, 3):
        raise ConfigError(
            f"in_chans must be 1 (grayscale model) or 3 (RGB model), got {chans!r}; other "
            "channel counts need a custom transform"
        )
    return chans


def interpolation_mode(name: str) -> v2.InterpolationMode:
    try:
        return _INTERPOLATION[name]
    except KeyError:
        raise ConfigError(
            f"interpolation must be one of {sorted(_INTERPOLATION)}, got {name!r}"
        ) from None


def normalize_stats(
    cfg: PreprocessConfig, in_chans: int
) -> tuple[Sequence[float], Sequence[float]]:
    """Mean/std for ``in_chans``: a 1-channel model gets the average of the RGB statistics."""
    if in_chans == 1:
        return [sum(cfg.mean) / 3.0], [sum(cfg.std) / 3.0]
    return list(cfg.mean), list(cfg.std)


class ConvertChannels:
    """Bring a PIL image or an image tensor to ``in_chans`` channels (first step of a pipeline).

    :func:`~effnet.data.images.load_image` already yields RGB; this guards callers that hand a
    grayscale picture straight to the transform, and turns RGB into ``L`` for 1-channel models.
    Converting before resizing also makes a 1-channel resize three times cheaper.
    """

    def __init__(self, in_chans: int) -> None:
        self.in_chans = resolve_in_chans(None, in_chans)

    def __call__(self, img: Any) -> Any:
        if isinstance(img, Image.Image):
            mode = "L" if self.in_chans == 1 else "RGB"
            if img.mode == mode:
                return img
            if self.in_chans == 3:
                return to_rgb(img)  # same transparency/16-bit policy as load_image
            return to_rgb(img).convert("L")
        if isinstance(img, torch.Tensor) and img.ndim >= 3:
            chans = img.shape[-3]
            if chans == self.in_chans:
                return img
            if chans == 1 and self.in_chans == 3:
                return img.expand(*img.shape[:-3], 3, *img.shape[-2:]).clone()
            if chans == 3 and self.in_chans == 1:
                return v2.functional.rgb_to_grayscale(img, num_output_channels=1)
            raise ConfigError(
                f"expected an image tensor with 1 or 3 channels (shape (..., C, H, W)), got "
                f"shape {tuple(img.shape)}; load pictures with effnet.data.load_image"
            )
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_chans={self.in_chans})"


def eval_transform(obj: object, *, in_chans: int | None = None) -> v2.Compose:
    """The eval pipeline for ``obj`` (see :func:`resolve_preprocess` for what it may be).

    Steps: resize the short side to ``resize_size`` (the config's interpolation, antialiased),
    center-crop ``input_size``, convert to a float tensor in [0, 1], normalise. For a 1-channel
    model (``in_chans=1`` or ``obj.in_chans == 1``) pictures are converted to grayscale first
    and normalised with the averaged mean/std. Input: a PIL image or a uint8 (C, H, W) tensor.
    """
    cfg = resolve_preprocess(obj)
    chans = resolve_in_chans(obj, in_chans)
    mean, std = normalize_stats(cfg, chans)
    return v2.Compose(
        [
            ConvertChannels(chans),
            v2.Resize(
                cfg.resize_size, interpolation=interpolation_mode(cfg.interpolation), antialias=True
            ),
            v2.CenterCrop(cfg.input_size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=mean, std=std),
        ]
    )
