"""``create_model`` and ``load_model``: the architecture from the registry plus weights.

This is the API most users call. It sits above the registry and the weights package so that
neither has to know about the other.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from effnet.model import EfficientNetFeatures
from effnet.registry import build_model, get_spec
from effnet.weights.loading import load_weights
from effnet.weights.native import build_from_weights, load_checkpoint

__all__ = ["create_model", "load_model"]


def create_model(
    name: str,
    pretrained: bool | str = False,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    **overrides: Any,
) -> nn.Module:
    """Create an EfficientNet by name, timm-style.

    Args:
        name: a variant from :func:`effnet.list_models` (``"efficientnet_b0"``,
            ``"efficientnetv2_s"``, ...), or ``"efficientnet"`` with ``phi=`` (and optionally
            ``alpha``, ``beta``, ``gamma``, ``base``) for any compound coefficient.
        pretrained: ``False``; ``True`` for the variant's default weights; a weight tag (see
            ``effnet weights NAME``); or a path to a weights file in any supported format.
            The weights' preprocessing and label names travel with the model
            (``model.preprocess``, ``model.class_names``).
        num_classes: size of the classifier (0 = no classifier: ``forward`` returns features).
            With pretrained weights, a different size keeps the backbone and starts a new head.
        in_chans: input channels (1 for grayscale; a pretrained stem is summed over RGB).
        drop_rate: dropout before the classifier (default: the variant's).
        drop_path_rate: stochastic-depth rate of the last block (default 0.2).
        features_only: return a backbone giving multi-scale feature maps.
        out_indices: which feature levels (strides 2, 4, 8, 16, 32) to return.
        **overrides: spec fields, e.g. ``padding="same"``, ``bn_eps=1e-5``, or ``phi=`` & co.
    """
    if not pretrained:
        return build_model(
            name,
            num_classes=num_classes,
            in_chans=in_chans,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            features_only=features_only,
            out_indices=out_indices,
            **overrides,
        )
    arch = {k: overrides.pop(k) for k in ("padding", "bn_eps", "bn_momentum") if k in overrides}
    target: Any = name if not overrides else get_spec(name, **overrides)
    loaded = load_weights(target, pretrained, arch=arch or None)
    model = build_from_weights(
        loaded,
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
    )
    if features_only:
        backbone = EfficientNetFeatures(model.spec, tuple(out_indices), in_chans, drop_path_rate)
        backbone.load_state_dict(
            {k: v for k, v in model.state_dict().items() if k in backbone.state_dict()}
        )
        backbone.preprocess = model.preprocess
        return backbone
    return model


def load_model(
    path: str | os.PathLike[str], model: str | None = None, **model_kwargs: Any
) -> nn.Module:
    """Load any supported weights file (effnet files need no ``model``; foreign ones do)."""
    built, _ = load_checkpoint(path, model=model, **model_kwargs)
    return built
