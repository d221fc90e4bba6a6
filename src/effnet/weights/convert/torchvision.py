"""Key map for torchvision's ``efficientnet_b*`` / ``efficientnet_v2_*`` state dicts.

torchvision nests everything in ``features``: ``features.0`` is the stem, ``features.1..n`` the
stages, ``features.n+1`` the head conv; each block keeps its layers in a ``block`` Sequential
(expand?, depthwise, SE, project for MBConv; fused, project? for Fused-MBConv), each conv + BN as
``k.0`` / ``k.1``. The classifier is ``Sequential(Dropout, Linear)``, so its weight is
``classifier.1``.
"""

from __future__ import annotations

from effnet.specs import ModelSpec
from effnet.weights.convert.layout import LayerPair, blocks, conv_bn, head

STEM_KEY = "features.0.0.weight"
"""The stem's key: a state dict that holds it was written by torchvision."""


def _cna(ours: str, theirs: str) -> list[LayerPair]:
    return conv_bn(ours, f"{theirs}.0", f"{theirs}.1")  # torchvision's Conv2dNormActivation


def layer_pairs(spec: ModelSpec) -> list[LayerPair]:
    pairs = _cna("stem", "features.0")
    for b in blocks(spec):
        seq = f"features.{b.stage + 1}.{b.index}.block"
        k = 0
        if b.kind == "mbconv":
            if b.has_expand:
                pairs += _cna(f"{b.ours}.expand", f"{seq}.{k}")
                k += 1
            pairs += _cna(f"{b.ours}.depthwise", f"{seq}.{k}")
            k += 1
            if b.has_se:
                pairs += [
                    (f"{b.ours}.se.reduce", f"{seq}.{k}.fc1", "conv_bias"),
                    (f"{b.ours}.se.expand", f"{seq}.{k}.fc2", "conv_bias"),
                ]
                k += 1
            pairs += _cna(f"{b.ours}.project", f"{seq}.{k}")
        else:
            pairs += _cna(f"{b.ours}.fused", f"{seq}.0")
            if b.has_expand:
                pairs += _cna(f"{b.ours}.project", f"{seq}.1")
    last = f"features.{len(spec.stages) + 1}"
    return pairs + head(f"{last}.0", f"{last}.1", "classifier.1")
