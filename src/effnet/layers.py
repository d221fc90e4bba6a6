"""Building blocks: convolution + BatchNorm + activation, squeeze-excite, MBConv, Fused-MBConv.

Every block reads top to bottom in the order the papers draw it. Shapes are NCHW; comments give
them where they change. Nothing here knows about variants: blocks receive plain numbers.

The blocks are plain ``nn.Module``s: every submodule runs in ``forward`` (BatchNorm included, so
its hooks fire), no tensor a hook may have captured is modified in place, ``torch.fx`` traces
them and double backward works. The speed paths live in :meth:`ConvNormAct.fuse` (BatchNorm
folded into the convolution) and the ``inplace`` switches that :meth:`EfficientNet.fuse`
turns on in an inference copy; effnet's own predict/evaluate passes use that copy.
"""

# No `from __future__ import annotations` in this module: torch.fx writes the traced root's
# forward annotations into the code it generates, and a string "torch.Tensor" becomes the
# unknown name `_torch_Tensor_`, which torch.jit.script of the traced module refuses.

from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from effnet.errors import ConfigError

__all__ = [
    "ConvNormAct",
    "DropPath",
    "FusedMBConv",
    "GlobalPool",
    "LayerOptions",
    "MBConv",
    "SamePadConv2d",
    "SqueezeExcite",
    "make_activation",
    "make_conv",
    "pad_same",
    "same_padding",
]


@dataclass(frozen=True)
class LayerOptions:
    """Options shared by every layer of one network (taken from its ModelSpec)."""

    activation: str = "silu"
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    padding: str = "symmetric"  # or "same": TensorFlow's asymmetric padding for strided convs


def make_activation(name: str, inplace: bool = False) -> nn.Module:
    if name == "silu":
        return nn.SiLU(inplace=inplace)
    if name == "relu6":
        return nn.ReLU6(inplace=inplace)
    if name == "relu":
        return nn.ReLU(inplace=inplace)
    raise ConfigError(f"unknown activation {name!r}; expected 'silu', 'relu6' or 'relu'")


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF "SAME" padding (before, after) along one axis: output = ceil(size / stride)."""
    out = -(size // -stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> torch.Tensor:
    """Pad ``x`` as TF "SAME" would for this convolution (the extra pixel goes bottom/right)."""
    ih, iw = x.shape[-2], x.shape[-1]
    pad_h = max((-(ih // -stride[0]) - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1 - ih, 0)
    pad_w = max((-(iw // -stride[1]) - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1 - iw, 0)
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
    return x


# The padding depends on the input's size: torch.fx records the call as one node instead of
# tracing Python arithmetic on sizes (which symbolic tracing cannot branch on).
torch.fx.wrap("pad_same")


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, which depends on the input size when strided.

    TF pads the extra pixel at the bottom/right; PyTorch's symmetric padding shifts the sampling
    grid by one pixel, which costs ported checkpoints accuracy. Only strided convs need this class:
    at stride 1 with an odd kernel, SAME is symmetric and :func:`make_conv` uses a plain Conv2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def make_conv(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    bias: bool = False,
    padding: str = "symmetric",
) -> nn.Conv2d:
    """A kxk convolution with PyTorch-style symmetric padding, or TF "SAME" when asked."""
    if padding == "same" and stride > 1:
        return SamePadConv2d(in_channels, out_channels, kernel, stride, 0, groups=groups, bias=bias)
    return nn.Conv2d(
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
        self.bn: nn.Module = nn.BatchNorm2d(
            out_channels, eps=opts.bn_eps, momentum=opts.bn_momentum
        )
        self.act = make_activation(opts.activation) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> "ConvNormAct":
        """Fold the BatchNorm into the convolution, in place (inference only; returns self).

        ``w' = w * s`` and ``b' = beta - mean * s (+ b * s)`` with ``s = gamma / sqrt(var + eps)``:
        one convolution with a bias replaces conv -> BN, and ``bn`` becomes ``nn.Identity``.
        Already-fused layers and BatchNorm subclasses with their own semantics are left alone.
        """
        bn, conv = self.bn, self.conv
        if type(bn) is not nn.BatchNorm2d:
            return self
        if bn.running_mean is None or bn.running_var is None:
            raise ConfigError(
                "cannot fold a BatchNorm without running statistics (track_running_stats=False); "
                "fold only models trained with the default BatchNorm"
            )
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        if conv.bias is not None:
            shift = shift + conv.bias * scale
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
        conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=False)
        self.bn = nn.Identity()
        if isinstance(self.act, (nn.SiLU, nn.ReLU6, nn.ReLU)):
            self.act.inplace = True  # the conv's fresh output is nobody else's tensor
        return self


class SqueezeExcite(nn.Module):
    """Channel attention: global average -> bottleneck 1x1 convs -> sigmoid gate -> rescale."""

    def __init__(self, channels: int, reduced: int, activation: str) -> None:
        super().__init__()
        self.inplace = False  # set by EfficientNet.fuse(): rescale the block's own tensor
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = make_activation(activation)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # squeeze: (N, C, H, W) -> (N, C, 1, 1); a global pool (not mean) exports as ONNX
        # GlobalAveragePool, which ONNX Runtime keeps in its blocked layout
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.expand(self.act(self.reduce(s)))  # excite: C -> C*r -> C
        if self.inplace and not torch.is_grad_enabled():
            return x.mul_(s.sigmoid())  # fused inference copy: no new activation-sized buffer
        return x * s.sigmoid()  # scale each channel by its gate in (0, 1)


POOL_KINDS = ("avg", "max", "avgmax", "catavgmax", "")


class GlobalPool(nn.Module):
    """Global pooling to one vector per image, timm's ``global_pool`` kinds.

    ``avg`` (the papers'), ``max``, ``avgmax`` (their mean), ``catavgmax`` (both, concatenated:
    twice the features) give (N, C) or (N, 2C); ``""`` passes the feature map through unpooled.
    """

    def __init__(self, kind: str = "avg") -> None:
        super().__init__()
        if kind not in POOL_KINDS:
            raise ConfigError(f"global_pool must be one of {POOL_KINDS}, got {kind!r}")
        self.kind = kind

    @property
    def feat_mult(self) -> int:
        return 2 if self.kind == "catavgmax" else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "":
            return x
        if self.kind == "avg":
            return F.adaptive_avg_pool2d(x, 1).flatten(1)  # ONNX GlobalAveragePool
        mx = F.adaptive_max_pool2d(x, 1).flatten(1)
        if self.kind == "max":
            return mx
        avg = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.kind == "avgmax":
            return 0.5 * (avg + mx)
        return torch.cat((avg, mx), dim=1)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch with probability ``p`` in training.

    Kept branches are scaled by 1 / (1 - p) so the expected output is unchanged; in eval it is the
    identity.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}"


class _Residual(nn.Module):
    """What MBConv and Fused-MBConv share: the shortcut, taken through drop-path when the
    block keeps its input's shape (stride 1, as many channels out as in)."""

    def _shortcut(self, in_channels: int, out_channels: int, stride: int, p: float) -> None:
        self.use_residual = stride == 1 and in_channels == out_channels
        self.inplace = False  # set by EfficientNet.fuse(): add the shortcut into the output
        self.drop_path = DropPath(p) if self.use_residual else nn.Identity()

    def _add_shortcut(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if not self.use_residual:
            return x
        x = self.drop_path(x)
        if self.inplace and not torch.is_grad_enabled():
            return x.add_(shortcut)  # fused inference copy: x is this block's own fresh output
        return x + shortcut


class MBConv(_Residual):
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
        # expand: 1x1 conv to `expand` times the channels (skipped when expand == 1)
        self.expand = (
            ConvNormAct(in_channels, mid, 1, opts) if mid != in_channels else nn.Identity()
        )
        # depthwise: one kxk filter per channel; this conv carries the stride
        self.depthwise = ConvNormAct(mid, mid, kernel, opts, stride=stride, groups=mid)
        # squeeze-excite: bottleneck sized from the block's *input* channels (paper, TF reference)
        self.se = (
            SqueezeExcite(mid, max(1, int(in_channels * se_ratio)), opts.activation)
            if se_ratio > 0
            else nn.Identity()
        )
        # project: linear 1x1 conv back to the narrow output (no activation)
        self.project = ConvNormAct(mid, out_channels, 1, opts, act=False)
        self._shortcut(in_channels, out_channels, stride, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.expand(x)  # (N, C_in, H, W) -> (N, C_mid, H, W)
        x = self.depthwise(x)  # -> (N, C_mid, H/s, W/s)
        x = self.se(x)
        x = self.project(x)  # -> (N, C_out, H/s, W/s)
        return self._add_shortcut(x, shortcut)


class FusedMBConv(_Residual):
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
        if expand != 1:
            # fused expand: a full kxk conv widens the channels and applies the stride
            self.fused = ConvNormAct(in_channels, mid, kernel, opts, stride=stride)
            # project: linear 1x1 conv back down
            self.project: nn.Module = ConvNormAct(mid, out_channels, 1, opts, act=False)
        else:
            self.fused = ConvNormAct(in_channels, out_channels, kernel, opts, stride=stride)
            self.project = nn.Identity()
        self._shortcut(in_channels, out_channels, stride, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.fused(x)  # (N, C_in, H, W) -> (N, C_mid, H/s, W/s)
        x = self.project(x)  # -> (N, C_out, H/s, W/s)
        return self._add_shortcut(x, shortcut)
