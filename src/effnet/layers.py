"""Building blocks: convolution + BatchNorm + activation, squeeze-excite, MBConv, Fused-MBConv.

Every block reads top to bottom in the order the papers draw it. Shapes are NCHW; comments give
them where they change. Nothing here knows about variants: blocks receive plain numbers.

Two speed paths live inside :class:`ConvNormAct`; neither changes a parameter or buffer name:

- **inference** (``eval()``): BatchNorm is folded into the convolution weights on the fly, so a
  block runs one convolution and an in-place activation instead of conv -> BN -> activation. On
  CPU an unfused eval BatchNorm is a full pass over a freshly allocated tensor and cost ~40% of
  B0's time in channels_last (profiled in docs/performance.md).
- **training**: BatchNorm + activation run as one autograd function that keeps only the BN input
  for backward and recomputes the cheap normalisation there, instead of also keeping the BN
  output (one activation-sized tensor fewer per layer; see ``benchmarks/train_throughput.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Conv2d",
    "ConvNormAct",
    "DropPath",
    "FusedMBConv",
    "LayerOptions",
    "MBConv",
    "SamePadConv2d",
    "SqueezeExcite",
    "make_activation",
    "make_conv",
    "same_padding",
]


@dataclass(frozen=True)
class LayerOptions:
    """Options shared by every layer of one network (taken from its ModelSpec)."""

    activation: str = "silu"
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01
    padding: str = "symmetric"  # or "same": TensorFlow's asymmetric padding for strided convs


def make_activation(name: str) -> nn.Module:
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}; expected 'silu', 'relu6' or 'relu'")


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF "SAME" padding (before, after) along one axis: output = ceil(size / stride)."""
    out = -(size // -stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward optionally takes replacement weights.

    :class:`ConvNormAct` passes BatchNorm-folded weights through the module call (rather than
    calling ``F.conv2d`` itself) so forward hooks on the conv still fire, e.g. for MAC counting.
    """

    def forward(
        self,
        x: torch.Tensor,
        weight: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if weight is None:
            return self._conv_forward(x, self.weight, self.bias)
        return self._conv_forward(x, weight, bias)


class SamePadConv2d(Conv2d):
    """Conv2d with TensorFlow "SAME" padding, which depends on the input size when strided.

    TF pads the extra pixel at the bottom/right; PyTorch's symmetric padding shifts the sampling
    grid by one pixel, which costs ported checkpoints accuracy. Only strided convs need this class:
    at stride 1 with an odd kernel, SAME is symmetric and :func:`make_conv` uses a plain Conv2d.
    """

    def _conv_forward(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        ih, iw = x.shape[-2], x.shape[-1]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        dh, dw = self.dilation
        pad_h = max((-(ih // -sh) - 1) * sh + (kh - 1) * dh + 1 - ih, 0)
        pad_w = max((-(iw // -sw) - 1) * sw + (kw - 1) * dw + 1 - iw, 0)
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)


def make_conv(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    bias: bool = False,
    padding: str = "symmetric",
) -> Conv2d:
    """A kxk convolution with PyTorch-style symmetric padding, or TF "SAME" when asked."""
    if padding == "same" and stride > 1:
        return SamePadConv2d(in_channels, out_channels, kernel, stride, 0, groups=groups, bias=bias)
    return Conv2d(
        in_channels, out_channels, kernel, stride, padding=kernel // 2, groups=groups, bias=bias
    )


class ConvNormAct(nn.Module):
    """conv -> BatchNorm -> activation (activation optional, e.g. for the linear projection)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        opts: LayerOptions,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = make_conv(
            in_channels, out_channels, kernel, stride, groups, padding=opts.padding
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=opts.bn_eps, momentum=opts.bn_momentum)
        self.act = make_activation(opts.activation) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            return self._eager_forward(x)
        return self.act(self.bn(self.conv(x)))  # TorchScript: the plain composition

    @torch.jit.unused
    def _eager_forward(self, x: torch.Tensor) -> torch.Tensor:
        # Exact types only: a BatchNorm subclass (SyncBatchNorm-like, with its own forward) or a
        # swapped-in conv must run its own code, so the fused paths step aside for them.
        bn = self.bn
        if (
            type(bn) is nn.BatchNorm2d
            and isinstance(self.conv, Conv2d)
            and bn.affine
            and bn.running_mean is not None
            and bn.running_var is not None
        ):
            # bn.training, not self.training: a user may freeze BN statistics (bn.eval()) while
            # the rest trains, and the fold must follow BN's own mode to stay exact
            return self._train_forward(x) if bn.training else self._folded_forward(x)
        return self.act(bn(self.conv(x)))

    @torch.jit.unused
    def _folded_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: BN folded into the conv (w * s, b * s + beta - mean * s), one pass."""
        bn, conv = self.bn, self.conv
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale.reshape(-1, 1, 1, 1)
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        return self.act(conv(x, weight, bias))

    @torch.jit.unused
    def _train_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training conv -> BN -> activation, keeping only the BN input for backward."""
        bn = self.bn
        # fp32/fp64 only: under autocast or in half precision the plain path keeps torch's own
        # mixed-precision BatchNorm rules; unknown activations take the plain path too
        if (
            type(self.act) not in _ACT_KINDS
            or not torch.is_grad_enabled()
            or x.dtype not in (torch.float32, torch.float64)
            or torch.is_autocast_enabled(x.device.type)
        ):
            return self.act(bn(self.conv(x)))
        momentum = 0.0 if bn.momentum is None else bn.momentum
        if bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)  # as nn.BatchNorm2d does, so checkpoints match
            if bn.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(bn.num_batches_tracked)
        return _BatchNormAct.apply(
            self.conv(x),
            bn.weight,
            bn.bias,
            bn.running_mean,
            bn.running_var,
            momentum,
            bn.eps,
            _ACT_KINDS[type(self.act)],
        )


# Activations the fused training path knows; others (or subclasses) take the plain path.
_ACT_KINDS: dict[type, str] = {nn.SiLU: "silu", nn.ReLU6: "relu6", nn.ReLU: "relu"}


class _BatchNormAct(torch.autograd.Function):
    """Training BatchNorm followed by an activation, storing one tensor instead of two.

    Autograd normally keeps BN's input (for BN's backward) *and* BN's output (for the
    activation's backward; an in-place activation makes autograd clone it). Here the BN output is
    recomputed in backward from the input and the saved batch statistics: one cheap elementwise
    pass buys back an activation-sized tensor per layer. ReLU-type gradients only need the output
    (which the next layer keeps anyway), so they recompute nothing.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        running_mean: torch.Tensor | None,
        running_var: torch.Tensor | None,
        momentum: float,
        eps: float,
        act: str,
    ) -> torch.Tensor:
        y, mean, invstd = torch.native_batch_norm(
            x, weight, bias, running_mean, running_var, True, momentum, eps
        )
        if act == "silu":
            out = F.silu(y, inplace=True)
            ctx.save_for_backward(x, weight, bias, mean, invstd)
        else:
            out = F.hardtanh(y, 0.0, 6.0, inplace=True) if act == "relu6" else F.relu(y, True)
            ctx.save_for_backward(x, weight, bias, mean, invstd, out)
        ctx.act, ctx.eps = act, eps  # type: ignore[attr-defined]
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, weight, bias, mean, invstd, *rest = ctx.saved_tensors  # type: ignore[attr-defined]
        act: str = ctx.act  # type: ignore[attr-defined]
        if act == "silu":
            # recompute the BN output y = x * s + t, then overwrite it with dL/dy (one buffer)
            scale = weight * invstd
            shift = bias - mean * scale
            y = torch.addcmul(shift.reshape(1, -1, 1, 1), x, scale.reshape(1, -1, 1, 1))
            grad_y = torch.ops.aten.silu_backward.grad_input(grad, y, grad_input=y)
        elif act == "relu6":
            grad_y = torch.ops.aten.hardtanh_backward(grad, rest[0], 0.0, 6.0)
        else:
            grad_y = torch.ops.aten.threshold_backward(grad, rest[0], 0.0)
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad_y,
            x,
            weight,
            None,
            None,
            mean,
            invstd,
            True,
            ctx.eps,  # type: ignore[attr-defined]
            [needs[0], needs[1], needs[2]],
        )
        return gx, gw, gb, None, None, None, None, None


class SqueezeExcite(nn.Module):
    """Channel attention: global average -> bottleneck 1x1 convs -> sigmoid gate -> rescale."""

    def __init__(self, channels: int, reduced: int, activation: str, inplace: bool = False) -> None:
        super().__init__()
        # inplace: rescale the input tensor itself when no gradient is recorded (inference);
        # MBConv owns its input, a standalone user may not
        self.inplace = inplace
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = make_activation(activation)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # squeeze: (N, C, H, W) -> (N, C, 1, 1); a global pool (not mean) exports as ONNX
        # GlobalAveragePool, which ONNX Runtime keeps in its blocked layout
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.expand(self.act(self.reduce(s)))  # excite: C -> C*r -> C
        if self.inplace and not torch.is_grad_enabled():
            return x.mul_(s.sigmoid())  # no new activation-sized buffer in inference
        return x * s.sigmoid()  # scale each channel by its gate in (0, 1)


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch with probability ``p`` in training.

    Kept branches are scaled by 1 / (1 - p) so the expected output is unchanged; in eval it is the
    identity.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}"


def _residual(x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled():
        return x + shortcut
    return x.add_(shortcut)  # inference: x is this block's own fresh output, reuse its buffer


class MBConv(nn.Module):
    """Mobile inverted bottleneck (MobileNetV2) with squeeze-excite, as in EfficientNet."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        expand: float,
        se_ratio: float,
        opts: LayerOptions,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        mid = round(in_channels * expand)
        self.use_residual = stride == 1 and in_channels == out_channels
        # expand: 1x1 conv to `expand` times the channels (skipped when expand == 1)
        self.expand = (
            ConvNormAct(in_channels, mid, 1, opts) if mid != in_channels else nn.Identity()
        )
        # depthwise: one kxk filter per channel; this conv carries the stride
        self.depthwise = ConvNormAct(mid, mid, kernel, opts, stride=stride, groups=mid)
        # squeeze-excite: bottleneck sized from the block's *input* channels (paper, TF reference)
        self.se = (
            SqueezeExcite(mid, max(1, int(in_channels * se_ratio)), opts.activation, inplace=True)
            if se_ratio > 0
            else nn.Identity()
        )
        # project: linear 1x1 conv back to the narrow output (no activation)
        self.project = ConvNormAct(mid, out_channels, 1, opts, act=False)
        self.drop_path = DropPath(drop_path) if self.use_residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.expand(x)  # (N, C_in, H, W) -> (N, C_mid, H, W)
        x = self.depthwise(x)  # -> (N, C_mid, H/s, W/s)
        x = self.se(x)
        x = self.project(x)  # -> (N, C_out, H/s, W/s)
        if self.use_residual:
            x = _residual(self.drop_path(x), shortcut)
        return x


class FusedMBConv(nn.Module):
    """EfficientNetV2's Fused-MBConv: the 1x1 expand and kxk depthwise become one kxk conv.

    With expand == 1 the block is a single kxk conv + BN + activation (no projection).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        expand: float,
        opts: LayerOptions,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        mid = round(in_channels * expand)
        self.use_residual = stride == 1 and in_channels == out_channels
        if expand != 1:
            # fused expand: a full kxk conv widens the channels and applies the stride
            self.fused = ConvNormAct(in_channels, mid, kernel, opts, stride=stride)
            # project: linear 1x1 conv back down
            self.project: nn.Module = ConvNormAct(mid, out_channels, 1, opts, act=False)
        else:
            self.fused = ConvNormAct(in_channels, out_channels, kernel, opts, stride=stride)
            self.project = nn.Identity()
        self.drop_path = DropPath(drop_path) if self.use_residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.fused(x)  # (N, C_in, H, W) -> (N, C_mid, H/s, W/s)
        x = self.project(x)  # -> (N, C_out, H/s, W/s)
        if self.use_residual:
            x = _residual(self.drop_path(x), shortcut)
        return x
