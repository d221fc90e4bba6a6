"""``EfficientNet(spec)``: stem -> stages of MBConv / Fused-MBConv blocks -> head -> classifier.

The module tree is deliberately flat and named for what each part is::

    stem            ConvNormAct 3x3 stride 2
    stages[i][j]    block j of stage i (MBConv or FusedMBConv)
    head            ConvNormAct 1x1 to the feature width (1280 for B0)
    pool, dropout   global average pool and dropout before the classifier
    classifier      nn.Linear, so ``model.classifier = nn.Linear(...)`` replaces the head
"""

# No `from __future__ import annotations` in this module: torch.fx writes the traced root's
# forward annotations into the code it generates, and a string "torch.Tensor" becomes the
# unknown name `_torch_Tensor_`, which torch.jit.script of the traced module refuses.

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.utils.checkpoint
from torch import nn

from effnet.errors import ConfigError
from effnet.layers import (
    ConvNormAct,
    FusedMBConv,
    GlobalPool,
    LayerOptions,
    MBConv,
    SqueezeExcite,
)
from effnet.scaling import drop_path_rates
from effnet.specs import ModelSpec, PreprocessConfig

__all__ = [
    "EfficientNet",
    "EfficientNetFeatures",
    "FeatureInfoList",
    "feature_info",
    "input_size",
]


class FeatureInfoList(list):
    """The feature maps a network can return, in timm's form: a list of dicts (``num_chs``,
    ``reduction``, ``module``, ``stage``, ``index``) with timm's ``FeatureInfo`` accessors, so
    ``model.feature_info.channels()`` and ``timm.models.FeatureInfo(model.feature_info, n)``
    both work."""

    def _get(self, key: str, idx: int | list[int] | None) -> list[object] | object:
        if idx is None:
            return [f[key] for f in self]
        if isinstance(idx, (list, tuple)):
            return [self[i][key] for i in idx]
        return self[idx][key]

    def channels(self, idx: int | list[int] | None = None) -> list[object] | object:
        return self._get("num_chs", idx)

    def reduction(self, idx: int | list[int] | None = None) -> list[object] | object:
        return self._get("reduction", idx)

    def module_name(self, idx: int | list[int] | None = None) -> list[object] | object:
        return self._get("module", idx)

    def get_dicts(
        self, keys: list[str] | None = None, idx: int | list[int] | None = None
    ) -> list[dict[str, object]]:
        rows = self if idx is None else [self[i] for i in ([idx] if isinstance(idx, int) else idx)]
        return [dict(f) if keys is None else {k: f[k] for k in keys} for f in rows]


def feature_info(spec: ModelSpec) -> FeatureInfoList:
    """One entry per distinct stride: the output of the *last* stage that runs at that stride."""
    infos = FeatureInfoList()
    reduction = 2  # the stem has stride 2
    for i, stage in enumerate(spec.stages):
        reduction *= stage.stride
        row = {
            "num_chs": stage.out_channels,
            "reduction": reduction,
            "module": f"stages.{i}",
            "stage": i,
        }
        if infos and infos[-1]["reduction"] == reduction:
            infos[-1] = row
        else:
            infos.append(row)
    for index, row in enumerate(infos):
        row["index"] = index
    return infos


def input_size(model: nn.Module, default: int = 224) -> int:
    """The input size a model expects: its preprocessing's, else ``default`` (a foreign module
    without one)."""
    preprocess = getattr(model, "preprocess", None)
    return int(getattr(preprocess, "input_size", default))


def take_indices(levels: int, indices: int | list[int] | tuple[int, ...] | None) -> list[int]:
    """timm's rule for ``indices``: None = every level, an int n = the last n, a sequence = those
    (negative counts from the end); sorted, each checked against ``levels``."""
    if indices is None:
        chosen = list(range(levels))
    elif isinstance(indices, int):
        if not 0 < indices <= levels:
            raise ConfigError(f"indices={indices} asks for the last n of {levels} feature levels")
        chosen = list(range(levels - indices, levels))
    else:
        chosen = []
        for i in indices:
            if not -levels <= i < levels:
                raise ConfigError(f"feature index {i} is out of range for {levels} levels")
            chosen.append(i % levels)
    return sorted(set(chosen))


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
    """An EfficientNet (V1, Lite or V2) built from a :class:`~effnet.specs.ModelSpec`.

    Besides ``forward``, it has timm's model surface: ``forward_features``, ``forward_head``,
    ``forward_intermediates``, ``reset_classifier(num_classes, global_pool)``,
    ``set_grad_checkpointing``, ``group_matcher``, ``feature_info``, ``pretrained_cfg``.
    """

    __jit_unused_properties__: ClassVar[list[str]] = [
        "default_cfg",
        "pretrained_cfg",
        "head_hidden_size",
    ]  # plain-Python metadata

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float | None = None,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if num_classes < 0 or in_chans < 1:
            raise ConfigError(
                f"need num_classes >= 0 and in_chans >= 1, got {num_classes}, {in_chans}"
            )
        self.spec = spec
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = spec.dropout if drop_rate is None else drop_rate
        # The one runtime owner of preprocessing: effnet.create_model sets it from the weights'
        # record (or the name's default record); fine-tuning at another size replaces it.
        self.preprocess = PreprocessConfig(input_size=spec.resolution)
        self.class_names: list[str] | None = None  # set when weights carry label names
        self.pretrained_source: str | None = None  # which weights were loaded, if any
        self.weights_info: dict[str, Any] = {}  # the weights' record (tag, url, ...), if any
        self.feature_info = feature_info(spec)
        self.grad_checkpointing = False
        rate = spec.drop_path_rate if drop_path_rate is None else drop_path_rate
        self.stem, self.stages = _build_trunk(spec, in_chans, rate)
        self.head = ConvNormAct(
            spec.stages[-1].out_channels, spec.head_channels, 1, _layer_options(spec)
        )
        self.pool = GlobalPool(global_pool)
        self.num_features = spec.head_channels * self.pool.feat_mult
        self.dropout = nn.Dropout(self.drop_rate)
        self.classifier: nn.Module = self._new_classifier(num_classes)
        _init_weights(self)

    def _new_classifier(self, num_classes: int) -> nn.Module:
        if num_classes > 0 and self.pool.kind == "":
            raise ConfigError(
                "global_pool='' returns unpooled feature maps, which a linear classifier cannot "
                "take; pass num_classes=0 with it (or another global_pool)"
            )
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def head_hidden_size(self) -> int:
        return self.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, num_features, H/32, W/32), before pooling."""
        x = self.stem(x)
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            x = self._checkpointed_stages(x)
        else:
            x = self.stages(x)
        return self.head(x)

    @torch.jit.unused
    def _checkpointed_stages(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            for block in stage:
                x = checkpoint_block(block, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the feature map and classify; ``pre_logits=True`` returns the pooled features."""
        x = self.pool(x)  # (N, C, h, w) -> (N, C)
        if pre_logits:
            return x
        return self.classifier(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: the feature maps at ``feature_info``'s levels.

        ``indices``: None = all 5 levels, an int n = the last n, a list = those. Returns
        ``(final, intermediates)`` where ``final`` is ``forward_features``' output (the head
        conv after the last stage), or only the intermediates with ``intermediates_only``.
        ``stop_early`` skips the stages after the deepest requested level. ``norm`` has nothing
        to apply (BatchNorm sits inside every block) and is accepted for timm's signature.
        """
        if output_fmt != "NCHW":
            raise ConfigError(
                f"output_fmt must be 'NCHW' (EfficientNet is a CNN), got {output_fmt!r}"
            )
        taps = [
            self.feature_info[i]["stage"] for i in take_indices(len(self.feature_info), indices)
        ]
        last = taps[-1] if stop_early else len(self.stages) - 1
        intermediates: list[torch.Tensor] = []
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            if i > last:
                break
            x = stage(x)
            if i in taps:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        if last == len(self.stages) - 1:
            x = self.head(x)
        return x, intermediates

    def prune_intermediate_layers(
        self,
        indices: int | list[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the stages after the deepest of ``indices`` (and the head and classifier with
        ``prune_head``) so the model computes only what ``forward_intermediates`` returns."""
        kept = take_indices(len(self.feature_info), indices)
        deepest = self.feature_info[kept[-1]]["stage"]
        self.stages = self.stages[: deepest + 1]
        if prune_head or deepest < len(self.spec.stages) - 1:
            self.head = nn.Identity()
            self.reset_classifier(0, "")
        return kept

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups, from the input to the output: the stem, each stage (each
        block unless ``coarse``), the head last (layer-wise learning-rate decay uses this)."""
        return {
            "stem": r"^stem\.",
            "blocks": [
                (r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)", None),
                (r"^head\.", (99999,)),
            ],
        }

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of keeping them (training
        only): a training step then keeps only the blocks' inputs. BatchNorm running
        statistics are updated once per step, as without checkpointing."""
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a freshly initialised one (0 classes = no classifier);
        ``global_pool`` also changes the pooling (``""`` returns unpooled feature maps)."""
        device = next(self.stem.parameters()).device
        if global_pool is not None:
            self.pool = GlobalPool(global_pool)
            self.num_features = self.spec.head_channels * self.pool.feat_mult
        self.num_classes = num_classes
        self.classifier = self._new_classifier(num_classes)
        _init_weights(self.classifier)
        self.classifier.to(device)

    def fuse(self) -> "EfficientNet":
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
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's ``pretrained_cfg``, derived from ``preprocess`` (the one owner) and the
        weights' record: ``timm.data.resolve_model_data_config(model)`` reads it."""
        return pretrained_cfg(self, self.preprocess)

    @pretrained_cfg.setter
    def pretrained_cfg(self, cfg: dict[str, Any]) -> None:
        self.preprocess = self.preprocess.with_cfg(cfg)
        self.weights_info = {**self.weights_info, **{
            k: v for k, v in cfg.items() if k in ("tag", "url", "hf_hub_id", "license", "origin")
        }}  # fmt: skip

    default_cfg = pretrained_cfg


@contextlib.contextmanager
def _batchnorm_statistics_frozen(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` normalise with batch statistics as in training but leave
    their running statistics (and batch count) as they are: a checkpointed block's recompute
    in backward must not update them a second time."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [
        (bn.momentum, None if bn.num_batches_tracked is None else bn.num_batches_tracked.clone())
        for bn in bns
    ]
    for bn in bns:
        bn.momentum = 0.0
    try:
        yield
    finally:
        for bn, (momentum, count) in zip(bns, saved):
            bn.momentum = momentum
            if count is not None:
                bn.num_batches_tracked.copy_(count)


def checkpoint_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` under activation checkpointing: its activations are recomputed in backward
    (same dropout/drop-path draws, BatchNorm statistics updated once)."""
    return torch.utils.checkpoint.checkpoint(
        block,
        x,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), _batchnorm_statistics_frozen(block)),
    )


def pretrained_cfg(model: nn.Module, p: PreprocessConfig) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` dict for ``model`` with preprocessing ``p``."""
    info: dict[str, Any] = getattr(model, "weights_info", {}) or {}
    size = p.input_size
    pooled = -(size // -32)
    return {
        "architecture": model.spec.name,
        "tag": info.get("tag"),
        "url": info.get("url"),
        "hf_hub_id": info.get("hf_hub_id"),
        "source": info.get("source"),
        "license": info.get("license"),
        "origin": info.get("origin"),
        "num_classes": getattr(model, "num_classes", 0),
        "input_size": (getattr(model, "in_chans", 3), size, size),
        "pool_size": (pooled, pooled),
        "crop_pct": p.crop_pct,
        "crop_mode": "center",
        "interpolation": p.interpolation,
        "mean": p.mean,
        "std": p.std,
        "first_conv": "stem.conv",
        "classifier": "classifier",
        "fixed_input_size": False,
    }


class EfficientNetFeatures(nn.Module):
    """A backbone that returns multi-scale feature maps (for detection and segmentation heads).

    Its parameter names are those of :class:`EfficientNet` (``stem.*``, ``stages.*``), so a
    classification checkpoint loads into it with ``strict=False`` (the head is simply unused).
    """

    __jit_unused_properties__: ClassVar[list[str]] = [
        "channels",
        "reductions",
        "pretrained_cfg",
        "default_cfg",
    ]

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
            raise ConfigError(
                f"out_indices {out_indices} do not fit {spec.name}: it has {len(infos)} feature "
                f"levels (indices 0..{len(infos) - 1}, strides {infos.reduction()})"
            )
        chosen = sorted({i % len(infos) for i in out_indices})
        self.spec = spec
        self.in_chans = in_chans
        self.num_classes = 0
        self.preprocess = PreprocessConfig(input_size=spec.resolution)
        self.weights_info: dict[str, Any] = {}
        self.feature_info = FeatureInfoList(infos[i] for i in chosen)
        self._taps = [int(infos[i]["stage"]) for i in chosen]
        rate = spec.drop_path_rate if drop_path_rate is None else drop_path_rate
        self.stem, self.stages = _build_trunk(spec, in_chans, rate)
        # stages past the deepest tap are never run: drop them so they hold no parameters
        self.stages = self.stages[: self._taps[-1] + 1]
        _init_weights(self)

    @property
    def channels(self) -> list[int]:
        return list(self.feature_info.channels())

    @property
    def reductions(self) -> list[int]:
        return list(self.feature_info.reduction())

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        return pretrained_cfg(self, self.preprocess)

    default_cfg = pretrained_cfg

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features: list[torch.Tensor] = []
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self._taps:
                features.append(x)
        return features
