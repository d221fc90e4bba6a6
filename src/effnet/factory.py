"""``create_model``: the architecture from the registry plus, when asked, pretrained weights.

This is the one function most users call. It sits above the registry and the weights package so
that neither has to know about the other.
"""

from __future__ import annotations

from torch import nn

from effnet.registry import build_model

__all__ = ["create_model"]


def create_model(
    name: str,
    pretrained: bool | str = False,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    **overrides: object,
) -> nn.Module:
    """Create an EfficientNet by name, timm-style.

    Args:
        name: a variant from :func:`effnet.list_models` (``"efficientnet_b0"``,
            ``"efficientnetv2_s"``, ...), or ``"efficientnet"`` with ``phi=`` (and optionally
            ``alpha``, ``beta``, ``gamma``, ``base``) for any compound coefficient.
        pretrained: ``False``; ``True`` for the variant's default weights; a weight tag; or a path.
        num_classes: size of the classifier (0 = no classifier, ``forward`` returns features).
        in_chans: input channels (1 for grayscale; pretrained stems are summed over RGB).
        drop_rate: dropout before the classifier (default: the variant's).
        drop_path_rate: stochastic-depth rate of the last block (default 0.2).
        features_only: return a backbone giving multi-scale feature maps.
        out_indices: which feature levels (strides 2, 4, 8, 16, 32) to return.
        **overrides: spec fields, e.g. ``padding="same"``, ``bn_eps=1e-5``.
    """
    if pretrained:
        raise NotImplementedError(
            "pretrained weights are not available in this build yet; use pretrained=False"
        )
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
