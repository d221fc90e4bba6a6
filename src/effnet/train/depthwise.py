"""A faster weight gradient for depthwise convolutions whose kernel is larger than their input,
used by the training loop on CPU.

Profiling an EfficientNet training step on CPU (oneDNN, fp32, channels_last) shows the weight
gradient of a depthwise convolution taking 5-13x longer than it should exactly when its kernel is
larger than the feature map it slides over: Lite0's and B0's 5x5 kernels on the last stage's 4x4
maps at 128 px took 20-36 ms each (their forward: 1 ms), the 3x3 kernels on 2x2 maps at 64 px
9 ms. Where the map is at least as large as the kernel, oneDNN's kernel is the faster one
(``python benchmarks/train_throughput.py`` and docs/performance.md have the numbers).

For those layers the weight gradient is computed here as what it is: for every kernel offset
(i, j), the sum over images and positions of the output gradient times the input shifted by
(i, j). With a kernel as large as the map, that is k*k small products (4.8 ms instead of 36 for
the 4x4 case). The forward and the input gradient stay torch's own; the results agree with
torch's to float rounding (the sums run in another order).

:func:`fast_depthwise_grads` switches it on for a model while a block runs (the training loop
wraps every epoch in it); nothing of the model changes: no parameter, buffer or class, and the
module's own ``forward`` is back when the block ends.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from effnet.layers import SamePadConv2d, pad_same

__all__ = ["fast_depthwise_grads", "routed"]


class _SmallMapDepthwise(torch.autograd.Function):
    """Depthwise conv2d (no bias, dilation 1) with the shifted-sum weight gradient."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding  # what backward needs besides the tensors
        return F.conv2d(x, weight, None, stride, padding, 1, weight.shape[0])

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding = ctx.stride, ctx.padding
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, list(stride), list(padding), [1, 1], False, [0, 0],
                weight.shape[0], [True, False, False],
            )[0]  # fmt: skip
        if ctx.needs_input_grad[1]:
            grad_w = shifted_weight_grad(x, grad, weight.shape[-2:], stride, padding)
        return grad_x, grad_w, None, None


def shifted_weight_grad(
    x: torch.Tensor,
    grad: torch.Tensor,
    kernel: tuple[int, int] | torch.Size,
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> torch.Tensor:
    """The weight gradient of a depthwise conv2d, one kernel offset at a time: (C, 1, kh, kw)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo = grad.shape[-2:]
    xp = F.pad(x, (pw, pw, ph, ph))
    sums = [
        (xp[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw] * grad).sum(
            (0, 2, 3)
        )
        for i in range(kh)
        for j in range(kw)
    ]
    return torch.stack(sums, 1).view(x.shape[1], 1, kh, kw)


def routed(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether ``conv`` on ``x`` takes the shifted-sum weight gradient: a depthwise conv with no
    bias, dilation 1 and zero padding, on CPU without autocast, training its weight, with a
    kernel larger than the map."""
    return (
        conv.groups > 1
        and conv.groups == conv.in_channels == conv.out_channels
        and conv.bias is None
        and conv.dilation == (1, 1)
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and x.device.type == "cpu"
        and conv.weight.requires_grad
        and torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and (conv.kernel_size[0] > x.shape[-2] or conv.kernel_size[1] > x.shape[-1])
    )


def _forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if not routed(self, x):
        return type(self).forward(self, x)
    padding = tuple(self.padding)
    if isinstance(self, SamePadConv2d):
        x, padding = pad_same(x, self.kernel_size, self.stride, self.dilation), (0, 0)
    return _SmallMapDepthwise.apply(x, self.weight, tuple(self.stride), padding)


def _depthwise_convs(model: nn.Module) -> list[nn.Conv2d]:
    return [
        m
        for m in model.modules()
        if type(m) in (nn.Conv2d, SamePadConv2d) and m.groups > 1 and "forward" not in vars(m)
    ]


@contextlib.contextmanager
def fast_depthwise_grads(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Route ``model``'s depthwise convolutions through the faster weight gradient where it
    applies (:func:`routed`, decided at every call from the input's size) while the block runs;
    yields how many convolutions may take it."""
    convs = _depthwise_convs(model) if enabled else []
    for conv in convs:
        conv.forward = types.MethodType(_forward, conv)
    try:
        yield len(convs)
    finally:
        for conv in convs:
            del conv.forward
