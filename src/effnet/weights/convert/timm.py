"""Key map for timm's EfficientNet family (``efficientnet_*``, ``tf_efficientnet_*``, V2).

timm names layers by role: ``conv_stem``/``bn1``; per block ``conv_pw``/``bn1`` (expand),
``conv_dw``/``bn2``, ``se.conv_reduce``/``se.conv_expand``, ``conv_pwl``/``bn3`` (project). The
first V1 stage (expand 1) is a depthwise-separable block: ``conv_dw``/``bn1``, SE, ``conv_pw``/
``bn2``. V2's fused blocks are ``conv_exp``/``bn1`` + ``conv_pwl``/``bn2``, or a single
``conv``/``bn1`` when they do not expand. Then ``conv_head``/``bn2`` and ``classifier``.
"""

from __future__ import annotations

from effnet.specs import ModelSpec
from effnet.weights.convert.layout import LayerPair, blocks, head
from effnet.weights.convert.layout import conv_bn as _cb

STEM_KEY = "conv_stem.weight"
"""The stem's key: a state dict that holds it was written by timm."""


def layer_pairs(spec: ModelSpec) -> list[LayerPair]:
    pairs = _cb("stem", "conv_stem", "bn1")
    for b in blocks(spec):
        t = f"blocks.{b.stage}.{b.index}"
        se = [
            (f"{b.ours}.se.reduce", f"{t}.se.conv_reduce", "conv_bias"),
            (f"{b.ours}.se.expand", f"{t}.se.conv_expand", "conv_bias"),
        ]
        if b.kind == "mbconv" and b.has_expand:
            pairs += _cb(f"{b.ours}.expand", f"{t}.conv_pw", f"{t}.bn1")
            pairs += _cb(f"{b.ours}.depthwise", f"{t}.conv_dw", f"{t}.bn2")
            pairs += se if b.has_se else []
            pairs += _cb(f"{b.ours}.project", f"{t}.conv_pwl", f"{t}.bn3")
        elif b.kind == "mbconv":  # depthwise-separable block
            pairs += _cb(f"{b.ours}.depthwise", f"{t}.conv_dw", f"{t}.bn1")
            pairs += se if b.has_se else []
            pairs += _cb(f"{b.ours}.project", f"{t}.conv_pw", f"{t}.bn2")
        elif b.has_expand:  # fused MBConv ("EdgeResidual")
            pairs += _cb(f"{b.ours}.fused", f"{t}.conv_exp", f"{t}.bn1")
            pairs += _cb(f"{b.ours}.project", f"{t}.conv_pwl", f"{t}.bn2")
        else:  # fused with expand 1: a single conv-BN-act
            pairs += _cb(f"{b.ours}.fused", f"{t}.conv", f"{t}.bn1")
    return pairs + head("conv_head", "bn2", "classifier")
