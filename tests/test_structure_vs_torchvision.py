"""Our networks have torchvision's structure layer by layer: same parameter shapes in the same order
and the same output shape after every convolution, at each variant's own resolution."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import effnet

PAIRS = [(f"efficientnet_b{i}", f"efficientnet_b{i}") for i in range(8)] + [
    ("efficientnetv2_s", "efficientnet_v2_s"),
    ("efficientnetv2_m", "efficientnet_v2_m"),
    ("efficientnetv2_l", "efficientnet_v2_l"),
]


def conv_output_shapes(model: nn.Module, size: int) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size, device="meta"))
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize(("ours", "theirs"), PAIRS)
def test_layer_by_layer_structure_matches_torchvision(ours: str, theirs: str) -> None:
    with torch.device("meta"):
        a = effnet.create_model(ours)
        b = getattr(torchvision.models, theirs)()
    shapes_a = [tuple(p.shape) for p in a.parameters()]
    shapes_b = [tuple(p.shape) for p in b.parameters()]
    assert shapes_a == shapes_b
    size = a.spec.resolution
    assert conv_output_shapes(a, size) == conv_output_shapes(b, size)
