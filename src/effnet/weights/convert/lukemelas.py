"""Key map for efficientnet_pytorch (lukemelas) and its EfficientNet-Lite port.

Blocks are numbered flat across stages (``_blocks.N``); each holds ``_expand_conv``/``_bn0`` (only
when it expands), ``_depthwise_conv``/``_bn1``, ``_se_reduce``/``_se_expand`` and
``_project_conv``/``_bn2``. Stem ``_conv_stem``/``_bn0``, head ``_conv_head``/``_bn1``, ``_fc``.
The library only implements V1 (and Lite), so V2 specs have no map.
"""

from __future__ import annotations

from effnet.errors import WeightsError
from effnet.specs import ModelSpec
from effnet.weights.convert.layout import LayerPair, blocks, head
from effnet.weights.convert.layout import conv_bn as _cb

STEM_KEY = "_conv_stem.weight"
"""The stem's key: a state dict that holds it was written by efficientnet_pytorch."""


def layer_pairs(spec: ModelSpec) -> list[LayerPair]:
    if any(s.block == "fused" for s in spec.stages):
        raise WeightsError(
            f"efficientnet_pytorch has no EfficientNetV2 ({spec.name} has fused stages); "
            f"convert V2 weights from timm or torchvision instead"
        )
    pairs = _cb("stem", "_conv_stem", "_bn0")
    for b in blocks(spec):
        t = f"_blocks.{b.flat}"
        if b.has_expand:
            pairs += _cb(f"{b.ours}.expand", f"{t}._expand_conv", f"{t}._bn0")
        pairs += _cb(f"{b.ours}.depthwise", f"{t}._depthwise_conv", f"{t}._bn1")
        if b.has_se:
            pairs += [
                (f"{b.ours}.se.reduce", f"{t}._se_reduce", "conv_bias"),
                (f"{b.ours}.se.expand", f"{t}._se_expand", "conv_bias"),
            ]
        pairs += _cb(f"{b.ours}.project", f"{t}._project_conv", f"{t}._bn2")
    return pairs + head("_conv_head", "_bn1", "_fc")
