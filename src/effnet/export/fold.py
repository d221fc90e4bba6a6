"""An inference-only copy of a model: BatchNorm folded, dropout gone, channels_last, compiled.

``optimize(model)`` never touches ``model``: it works on a deep copy, so the training model and
its checkpoint keys stay as they are. Folding turns every :class:`~effnet.layers.ConvNormAct`'s
``conv -> bn`` into one convolution with a bias (``w' = w * s``, ``b' = beta - mean * s`` with
``s = gamma / sqrt(var + eps)``), and replaces the BatchNorm with ``nn.Identity`` so the module
tree (and SAME padding, which lives in the conv class) is otherwise unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from effnet.layers import ConvNormAct, DropPath
from effnet.model import EfficientNet, input_size

__all__ = [
    "ParityError",
    "fold_batchnorm",
    "max_abs_diff",
    "optimize",
    "parity_input",
    "strip_training_layers",
]

PARITY_ATOL = 1e-4
"""Largest logit difference (fp32) an optimized or exported model may show against eager."""


class ParityError(RuntimeError):
    """An optimized or exported model does not reproduce the eager model's outputs."""


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold each ConvNormAct's BatchNorm into its convolution, in place; returns ``model``.

    Only BatchNorms in eval semantics can be folded (their running statistics are what folding
    bakes in), so the model is put in eval mode. Already-folded layers are left alone. For an
    :class:`~effnet.model.EfficientNet`, ``model.fuse()`` does this and also switches the blocks'
    in-place inference paths on.
    """
    model.eval()
    for module in model.modules():
        if isinstance(module, ConvNormAct):
            module.fuse()
    return model


def strip_training_layers(model: nn.Module) -> nn.Module:
    """Replace dropout and stochastic depth (identities in eval anyway) by ``nn.Identity``."""
    for name, child in list(model.named_children()):
        if isinstance(child, (nn.Dropout, DropPath)):
            setattr(model, name, nn.Identity())
        else:
            strip_training_layers(child)
    return model


def parity_input(
    model: nn.Module, batch: int = 2, resolution: int | None = None, seed: int = 0
) -> torch.Tensor:
    """A fixed random batch of the model's input size (for parity checks)."""
    size = resolution or input_size(model)
    chans = getattr(model, "in_chans", 3)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, chans, size, size, generator=gen)


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between two outputs (tensors or numpy arrays)."""
    ta = torch.as_tensor(a, dtype=torch.float64)
    tb = torch.as_tensor(b, dtype=torch.float64)
    if ta.shape != tb.shape:
        raise ParityError(f"output shapes differ: {tuple(ta.shape)} vs {tuple(tb.shape)}")
    return float((ta - tb).abs().max()) if ta.numel() else 0.0


def optimize(
    model: nn.Module,
    *,
    channels_last: bool = True,
    compile: bool = False,
    compile_options: dict[str, Any] | None = None,
    check: bool = True,
    check_resolution: int | None = None,
    atol: float = PARITY_ATOL,
) -> nn.Module:
    """An inference-optimised copy of ``model``; ``model`` itself is not modified.

    Folds every BatchNorm into its convolution, removes dropout and stochastic depth, freezes the
    parameters, switches to channels_last (the layout oneDNN's CPU convolutions and GPU tensor
    cores prefer) and, with ``compile=True``, wraps the result in ``torch.compile`` with weight
    freezing. With ``check`` (default) it runs both models on a fixed random batch and raises
    :class:`ParityError` when a logit differs by more than ``atol``.

    The returned module keeps ``spec``, ``preprocess`` and ``class_names``; feed it channels_last
    inputs (``x.to(memory_format=torch.channels_last)``) for the full speed-up.
    """
    was_training = model.training
    fast = copy.deepcopy(model)
    model.train(was_training)
    if isinstance(fast, EfficientNet):
        fast.fuse()  # BN folded, in-place activations, SE rescale and residual adds
    else:
        fold_batchnorm(fast)
    strip_training_layers(fast)
    fast.requires_grad_(False)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    result: nn.Module = fast
    if compile:
        # freezing lets inductor constant-fold the weights and prepack them for oneDNN
        options = {"freezing": True, **(compile_options or {})}
        result = torch.compile(fast, options=options)
        for attr in ("spec", "preprocess", "class_names", "num_classes", "in_chans"):
            if hasattr(fast, attr):
                setattr(result, attr, getattr(fast, attr))
    if check:
        check_parity(model, result, resolution=check_resolution, atol=atol)
    return result


def check_parity(
    reference: nn.Module | Callable[[torch.Tensor], Any],
    candidate: nn.Module | Callable[[torch.Tensor], Any],
    *,
    resolution: int | None = None,
    batch: int = 2,
    atol: float = PARITY_ATOL,
    inputs: torch.Tensor | None = None,
) -> float:
    """Max abs output difference of ``candidate`` vs ``reference`` (eval mode); raises over atol."""
    ref_module = reference if isinstance(reference, nn.Module) else None
    x = inputs if inputs is not None else parity_input(reference, batch, resolution)
    was_training = ref_module.training if ref_module is not None else False
    try:
        if ref_module is not None:
            ref_module.eval()
        with torch.inference_mode():
            expected = reference(x)
            got = candidate(x.to(memory_format=torch.channels_last))
    finally:
        if ref_module is not None:
            ref_module.train(was_training)
    diff = max_abs_diff(expected, got)
    if not diff <= atol:  # also catches NaN
        raise ParityError(
            f"optimized model differs from eager by {diff:.3g} (allowed {atol:g}); this is a bug "
            f"in effnet's folding or in the compiler: run optimize(..., compile=False) to narrow "
            f"it down and please report it"
        )
    return diff
