"""``EfficientNet(spec)``: stem -> stages of MBConv / Fused-MBConv blocks -> head -> classifier.

The module tree is deliberately flat and named for what each part is::

    stem            ConvNormAct 3x3 stride 2
    stages[i][j]    block j of stage i (MBConv or FusedMBConv)
    head            ConvNormAct 1x1 to the feature width (1280 for B0)
    pool, dropout   global average pool and dropout before the classifier
    classifier      nn.Linear, so ``model.classifier = nn.Linear(...)`` replaces the head
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from effnet.layers import ConvNormAct, FusedMBConv, LayerOptions, MBConv, SqueezeExcite
from effnet.scaling import drop_path_rates
from effnet.specs import ModelSpec, PreprocessConfig

__all__ = ["EfficientNet", "EfficientNetFeatures", "FeatureInfo", "feature_info"]


@dataclass(frozen=True)
class FeatureInfo:
    """A feature map a backbone can return: which stage ends it, its channels and its stride."""

    stage: int
    channels: int
    reduction: int


def feature_info(spec: ModelSpec) -> list[FeatureInfo]:
    """One entry per distinct stride: the output of the *last* stage that runs at that stride."""
    infos: list[FeatureInfo] = []
    reduction = 2  # the stem has stride 2
    for i, stage in enumerate(spec.stages):
        reduction *= stage.stride
        if infos and infos[-1].reduction == reduction:
            infos[-1] = FeatureInfo(i, stage.out_channels, reduction)
        else:
            infos.append(FeatureInfo(i, stage.out_channels, reduction))
    return infos


def _layer_options(spec: ModelSpec) -> LayerOptions:
    return LayerOptions(spec.activation, spec.bn_eps, spec.bn_momentum, spec.padding)


def _build_trunk(
    spec: ModelSpec, in_chans: int, drop_path_rate: float
) -> tuple[ConvNormAct, nn.Sequential]:
    """The stem and the stages; the linear drop-path ramp runs over all blocks of the network."""
    opts = _layer_options(spec)
    stem = ConvNormAct(in_chans, spec.stem_channels, 3, opts, stride=2)
    rates = iter(drop_path_rates(spec.num_blocks, drop_path_rate))
    stages: list[nn.Sequential] = []
    channels = spec.stem_channels
    for stage in spec.stages:
        blocks: list[nn.Module] = []
        for j in range(stage.repeats):
            stride = stage.stride if j == 0 else 1
            if stage.block == "fused":
                block: nn.Module = FusedMBConv(
                    channels,
                    stage.out_channels,
                    stage.kernel,
                    stride,
                    stage.expand,
                    opts,
                    next(rates),
                )
            else:
                block = MBConv(
                    channels,
                    stage.out_channels,
                    stage.kernel,
                    stride,
                    stage.expand,
                    stage.se_ratio,
                    opts,
                    next(rates),
                )
            blocks.append(block)
            channels = stage.out_channels
        stages.append(nn.Sequential(*blocks))
    return stem, nn.Sequential(*stages)


def _init_weights(module: nn.Module) -> None:
    """He (fan-out) init for convs, as in the TF reference; uniform 1/sqrt(fan-in) for linears."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            # The TF reference draws from U(+-1/sqrt(num_classes)): fine for 1000 classes (0.03),
            # but a 2-class head would start with weights up to 0.7 and huge logits. Bounding by
            # the fan-in gives the same scale at 1000 classes and a sane one for any other head.
            bound = 1.0 / m.in_features**0.5
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


class EfficientNet(nn.Module):
    """An EfficientNet (V1, Lite or V2) built from a :class:`~effnet.specs.ModelSpec`."""

    __jit_unused_properties__: ClassVar[list[str]] = [
        "default_cfg",
        "pretrained_cfg",
    ]  # plain-Python metadata

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 0 or in_chans < 1:
            raise ValueError(
                f"need num_classes >= 0 and in_chans >= 1, got {num_classes}, {in_chans}"
            )
        self.spec = spec
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = spec.head_channels
        self.drop_rate = spec.dropout if drop_rate is None else drop_rate
        # The one runtime owner of preprocessing: effnet.create_model sets it from the weights'
        # record (or the name's default record); fine-tuning at another size replaces it.
        self.preprocess = PreprocessConfig(input_size=spec.resolution)
        self.class_names: list[str] | None = None  # set when weights carry label names
        self.pretrained_source: str | None = None  # which weights were loaded, if any
        self.feature_info = feature_info(spec)
        rate = spec.drop_path_rate if drop_path_rate is None else drop_path_rate
        self.stem, self.stages = _build_trunk(spec, in_chans, rate)
        self.head = ConvNormAct(
            spec.stages[-1].out_channels, spec.head_channels, 1, _layer_options(spec)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(self.drop_rate)
        self.classifier: nn.Module = (
            nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        )
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, num_features, H/32, W/32), before pooling."""
        x = self.stem(x)
        x = self.stages(x)
        return self.head(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the feature map and classify; ``pre_logits=True`` returns the pooled features."""
        x = self.pool(x).flatten(1)  # (N, C, h, w) -> (N, C)
        if pre_logits:
            return x
        return self.classifier(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one (0 classes = no classifier)."""
        self.num_classes = num_classes
        if num_classes > 0:
            self.classifier = nn.Linear(self.num_features, num_classes)
            _init_weights(self.classifier)
            self.classifier.to(next(self.head.parameters()).device)
        else:
            self.classifier = nn.Identity()

    def fuse(self) -> EfficientNet:
        """Turn this model into its inference form, in place, and return it.

        Every BatchNorm is folded into its convolution and the activations, squeeze-excite
        rescale and residual add write into the block's own fresh tensors: fewer passes over
        memory and fewer buffers. The result is for inference only (eval mode, no BatchNorm
        modules left, forward hooks may see tensors change). Use ``effnet.export.optimize`` for
        a fused *copy* that leaves this model untouched.
        """
        self.eval()
        for module in self.modules():
            if isinstance(module, ConvNormAct):
                module.fuse()
            elif isinstance(module, (MBConv, FusedMBConv, SqueezeExcite)):
                module.inplace = True
        return self

    @property
    def default_cfg(self) -> dict[str, object]:
        """timm-style preprocessing dict (``input_size`` as (C, H, W))."""
        p = self.preprocess
        return {
            "input_size": (self.in_chans, p.input_size, p.input_size),
            "crop_pct": p.crop_pct,
            "interpolation": p.interpolation,
            "mean": p.mean,
            "std": p.std,
            "num_classes": self.num_classes,
            "architecture": self.spec.name,
        }

    pretrained_cfg = default_cfg


class EfficientNetFeatures(nn.Module):
    """A backbone that returns multi-scale feature maps (for detection and segmentation heads).

    Its parameter names are those of :class:`EfficientNet` (``stem.*``, ``stages.*``), so a
    classification checkpoint loads into it with ``strict=False`` (the head is simply unused).
    """

    __jit_unused_properties__: ClassVar[list[str]] = ["channels", "reductions"]

    def __init__(
        self,
        spec: ModelSpec,
        out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
        in_chans: int = 3,
        drop_path_rate: float | None = None,
    ) -> None:
        super().__init__()
        infos = feature_info(spec)
        bad = [i for i in out_indices if not -len(infos) <= i < len(infos)]
        if bad or not out_indices:
            raise ValueError(
                f"out_indices {out_indices} do not fit {spec.name}: it has {len(infos)} feature "
                f"levels (indices 0..{len(infos) - 1}, strides {[f.reduction for f in infos]})"
            )
        chosen = sorted({i % len(infos) for i in out_indices})
        self.spec = spec
        self.preprocess = PreprocessConfig(input_size=spec.resolution)
        self.feature_info = [infos[i] for i in chosen]
        self._taps = [infos[i].stage for i in chosen]
        rate = spec.drop_path_rate if drop_path_rate is None else drop_path_rate
        self.stem, self.stages = _build_trunk(spec, in_chans, rate)
        # stages past the deepest tap are never run: drop them so they hold no parameters
        self.stages = self.stages[: self._taps[-1] + 1]
        _init_weights(self)

    @property
    def channels(self) -> list[int]:
        return [f.channels for f in self.feature_info]

    @property
    def reductions(self) -> list[int]:
        return [f.reduction for f in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features: list[torch.Tensor] = []
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self._taps:
                features.append(x)
        return features
