"""Helpers for the export tests: models whose logits are O(1), so parity bounds mean something.

A freshly initialised EfficientNet has BatchNorm statistics (0, 1) and near-zero logits, which
would let a broken fold pass a 1e-4 check; random running statistics and affine parameters make
every BatchNorm matter.
"""

from __future__ import annotations

import torch
from torch import nn

import effnet
from effnet.specs import PreprocessConfig


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
    return model


def small_model(name: str, resolution: int, num_classes: int = 10, **overrides) -> nn.Module:
    """A variant with random BN statistics, set up to run at ``resolution``."""
    torch.manual_seed(0)
    model = effnet.create_model(name, num_classes=num_classes, **overrides)
    model.preprocess = PreprocessConfig(input_size=resolution)
    with torch.no_grad():
        model.classifier.weight.mul_(10.0)  # logits of order 1, not 0.01
    return randomize_bn(model).eval()


# (name, overrides, resolution): B0, Lite0 with TF SAME padding, V2-S. At even sizes SAME pads
# strided convs asymmetrically ((0, 1) for 3x3), which is what the export must get right; at odd
# sizes it happens to equal symmetric padding.
THREE = [
    ("efficientnet_b0", {}, 64),
    ("efficientnet_lite0", {"padding": "same"}, 64),
    ("efficientnetv2_s", {}, 64),
]


def tiny_model(num_classes: int = 10, resolution: int = 32, **overrides) -> nn.Module:
    """Two stages and a small head: for tests where the exact architecture does not matter."""
    from effnet.model import EfficientNet
    from effnet.specs import StageSpec

    spec = effnet.get_spec("efficientnet_b0", **overrides).replace(
        name="tiny",
        stages=(
            StageSpec("mbconv", 1, 3, 2, 4, 16, 0.25),
            StageSpec("mbconv", 2, 5, 2, 6, 24, 0.25),
        ),
        head_channels=64,
    )
    torch.manual_seed(0)
    model = EfficientNet(spec, num_classes=num_classes)
    model.preprocess = PreprocessConfig(input_size=resolution)
    with torch.no_grad():
        model.classifier.weight.mul_(10.0)
    return randomize_bn(model).eval()
