"""``create_model`` and ``load_model``: the architecture from the registry plus weights.

This is the API most users call. It sits above the registry and the weights package so that
neither has to know about the other. There is one construction path (timm's
``build_model_with_cfg``, torchvision's ``_efficientnet``): resolve the weights, derive the spec
from the name and the overrides, build once, load (:mod:`effnet.weights.loading`).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from effnet.errors import ConfigError
from effnet.registry import get_spec, name_for, split_tag
from effnet.specs import ModelSpec
from effnet.weights.loading import build, default_preprocess, read_weights, weights_for
from effnet.weights.native import load_checkpoint

__all__ = ["create_model", "load_model"]


def create_model(
    model_name: str | ModelSpec,
    pretrained: bool | str | os.PathLike[str] = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    **overrides: Any,
) -> nn.Module:
    """Create an EfficientNet by name, timm-style.

    Args:
        model_name: a name from :func:`effnet.list_models` (``"efficientnet_b0"``,
            ``"tf_efficientnetv2_s"``, ...), optionally with a weight tag
            (``"efficientnet_b0.ra_in1k"``); or ``"efficientnet"`` with ``phi=`` (and optionally
            ``alpha``, ``beta``, ``gamma``, ``base``) for any compound coefficient. The name
            alone fixes the network: ``tf_`` names use TF "SAME" padding and BatchNorm eps 1e-3.
        pretrained: ``False``; ``True`` for the name's default weights (or the tagged ones); a
            weight tag (see ``effnet weights NAME``); or a path to a weights file in any
            supported format. The weights' preprocessing and label names travel with the model
            (``model.preprocess``, ``model.class_names``).
        num_classes: size of the classifier (0 = no classifier: ``forward`` returns features).
            Default: the weights' (1000 without weights). Another size keeps the backbone and
            starts a new head.
        in_chans: input channels (1 for grayscale; a pretrained stem is summed over RGB).
        drop_rate: dropout before the classifier (default: the variant's).
        drop_path_rate: stochastic-depth rate of the last block (default 0.2).
        features_only: return a backbone giving multi-scale feature maps.
        out_indices: which feature levels (strides 2, 4, 8, 16, 32) to return.
        **overrides: spec fields (``dropout=``, ``resolution=``, ...) or ``phi=`` & co. With
            pretrained weights, only overrides that keep the network the weights were trained
            for are accepted.
    """
    name, tag = split_tag(model_name) if isinstance(model_name, str) else (model_name, None)
    spec = get_spec(name, **overrides)
    source = weights_for(spec.name if isinstance(name, ModelSpec) else name, tag, pretrained)
    loaded = None
    if source is not None:
        if isinstance(name, str):
            _check_overrides(name, spec, overrides)
        loaded = read_weights(spec, source)
    preprocess = None
    if loaded is None and isinstance(name, str):
        preprocess = default_preprocess(name, spec, tag)
    return build(
        spec,
        loaded,
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        features_only=features_only,
        out_indices=out_indices,
        preprocess=preprocess,
    )


def _check_overrides(name: str, spec: ModelSpec, overrides: dict[str, Any]) -> None:
    """Pretrained weights fit the network of their name: refuse overrides that change it."""
    plain = get_spec(name)
    if spec.same_network(plain):
        return
    changed = sorted(k for k in overrides if getattr(plain, k, None) != overrides[k])
    right = name_for(spec)
    hint = f" The network you asked for is {right!r}." if right else ""
    raise ConfigError(
        f"{', '.join(f'{k}={overrides[k]!r}' for k in changed) or 'the overrides'} change the "
        f"network that {name}'s pretrained weights were trained for.{hint} Drop the override to "
        f"use the weights, or pass pretrained=False to train this network from scratch. "
        f"dropout, drop_path_rate, resolution and bn_momentum combine with pretrained weights."
    )


def load_model(
    path: str | os.PathLike[str], model: str | None = None, **build_kwargs: Any
) -> nn.Module:
    """Load any supported weights file (effnet files need no ``model``; foreign ones do)."""
    built, _ = load_checkpoint(path, model=model, **build_kwargs)
    return built
