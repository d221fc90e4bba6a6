"""The shared walk over a network's layers that every key map is written against.

A converter lists, for each layer of our model, the name the foreign library gives the same layer;
:func:`expand` turns those layer pairs into parameter/buffer key pairs. Layers are described once
here so that each foreign format is a short, explicit table of names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from effnet.specs import ModelSpec

# What tensors each kind of layer holds.
_LEAVES = {
    "conv": ("weight",),
    "conv_bias": ("weight", "bias"),
    "bn": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    "linear": ("weight", "bias"),
}

LayerPair = tuple[str, str, str]
"""(our layer name, foreign layer name, kind)."""


@dataclass(frozen=True)
class Block:
    """Where a block sits and which optional parts it has."""

    stage: int
    index: int
    flat: int
    kind: str  # "mbconv" | "fused"
    has_expand: bool  # MBConv's 1x1 expand conv, or Fused-MBConv's separate projection
    has_se: bool

    @property
    def ours(self) -> str:
        return f"stages.{self.stage}.{self.index}"


def blocks(spec: ModelSpec) -> Iterator[Block]:
    flat = 0
    for i, stage in enumerate(spec.stages):
        for j in range(stage.repeats):
            yield Block(i, j, flat, stage.block, stage.expand != 1, stage.se_ratio > 0)
            flat += 1


def conv_bn(ours: str, conv: str, bn: str) -> list[LayerPair]:
    """One conv + BatchNorm layer of ours (``ours.conv``, ``ours.bn``) and its foreign names."""
    return [(f"{ours}.conv", conv, "conv"), (f"{ours}.bn", bn, "bn")]


def head(conv: str, bn: str, classifier: str) -> list[LayerPair]:
    """The head's conv + BatchNorm and the classifier, under their foreign names."""
    return [*conv_bn("head", conv, bn), ("classifier", classifier, "linear")]


def expand(pairs: list[LayerPair]) -> list[tuple[str, str]]:
    """Layer pairs -> (our key, foreign key) pairs for every parameter and buffer."""
    keys = []
    for ours, theirs, kind in pairs:
        keys.extend((f"{ours}.{leaf}", f"{theirs}.{leaf}") for leaf in _LEAVES[kind])
    return keys
