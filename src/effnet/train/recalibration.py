"""BatchNorm recalibration (AdaBN) at about the speed of the fused model's inference.

Recalibration replaces every BatchNorm's running statistics with those of the target images.
The textbook pass runs the network in train mode, where every BatchNorm computes its batch's
statistics, normalises with them and keeps a running mean: on a CPU that costs about twice
the fused model's inference (the statistics are two more reads of every activation, the
normalisation one more write, and nothing can be folded).

:func:`measure_batchnorm` measures the same thing through the fused model instead:

* Each convolution is folded once with the statistics the model had (``z = (y - m0) / sd0``,
  standardised with the old statistics only, so ``z`` is well conditioned whatever gamma is).
* A forward hook on each folded convolution reads a seeded sample of pixel positions, the
  same number from every image (:func:`sample_size`: all of them when few), and adds
  their per-channel mean and variance to the pooled statistics of every image so far (Chan et
  al.'s combination, in float64).
* The same hook then normalises the convolution's output in place, with one ``addcmul``, by
  the pooled statistics including this batch, and applies gamma and beta: what train mode's
  BatchNorm does, with the statistics of all images seen instead of this batch's alone.

Normalising each batch by statistics it contributed to matters. Folding the estimate of the
batches before it instead (no correction pass) was tried: on ELPV the deep layers' estimates
then ended up to 1.5 standard deviations from the statistics the eval-mode model sees on the
same images, against 0.09 for the train-mode pass and 0.23 for this one; phase 1's features
moved 0.26 (relative L2) from the train-mode pass's, less than the train-mode pass moves them
between two samples of 512 images (0.31). Time, on the 2-core development machine: 1.2x the
fused model's inference per image, where the train-mode pass takes 1.7-1.9x
(``python benchmarks/passes.py``).

The pooled statistics are those of every sampled position of every image: estimates of the
population mean and variance, where train mode's running average of batch variances leaves
the spread between batch means out. A model with a BatchNorm outside ``ConvNormAct`` (or not
an :class:`~effnet.model.EfficientNet`) takes the train-mode pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from effnet.layers import ConvNormAct, DropPath
from effnet.model import EfficientNet

__all__ = ["POSITIONS", "measure_batchnorm"]

POSITIONS = 8192
"""Pixel positions per BatchNorm and batch the statistics are read from (all when fewer). Over
a 512-image recalibration that is 65,536 positions per channel from every image; the
statistics' error is then dominated by which images were drawn, not by the positions."""
ELEMENTS = 1 << 19
"""Values per BatchNorm and batch the statistics read at most (wide layers read fewer positions)."""


def sample_size(total: int, channels: int, positions: int | None = POSITIONS) -> int:
    """How many of a batch's ``total`` pixel positions one BatchNorm's statistics read: all of
    them when they hold at most ``ELEMENTS`` values (or with ``positions=None``), else at most
    ``positions``, a quarter of them, and ``ELEMENTS / channels`` (a wide layer's positions
    each carry more values to read)."""
    if positions is None or total * channels <= ELEMENTS:
        return total
    return max(1, min(positions, total // 4, max(256, ELEMENTS // channels)))


@dataclass
class _Layer:
    """One BatchNorm's fold constants and its pooled statistics of the standardised ``z``."""

    bn: nn.BatchNorm2d
    m0: torch.Tensor  # the statistics the convolution was folded with (float64)
    sd0: torch.Tensor  # sqrt(var0 + eps) (float64)
    gamma: torch.Tensor  # (float64, as are beta and the pooled statistics)
    beta: torch.Tensor
    count: int = 0
    dtype: torch.dtype = torch.float64  # float32 on MPS, which has no float64
    mean: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    m2: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))

    def add(self, sample: torch.Tensor) -> None:
        """Pool the per-channel statistics of ``sample`` (positions x channels)."""
        k = sample.shape[0]
        mean = sample.mean(0)
        m2 = (sample - mean).square_().sum(0)  # two passes over the (small) sample: stable
        mean, m2 = mean.to(self.dtype), m2.to(self.dtype)
        if self.count == 0:
            self.count, self.mean, self.m2 = k, mean, m2
            return
        total = self.count + k
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + delta.square() * (self.count * k / total)
        self.mean = self.mean + delta * (k / total)
        self.count = total

    def normalise_(self, z: torch.Tensor) -> None:
        """BatchNorm of ``z`` by the pooled statistics (biased variance, as BatchNorm's
        normalisation uses), with gamma and beta, in place."""
        var = self.m2 / self.count
        ratio = self.gamma * self.sd0 / torch.sqrt(var * self.sd0.square() + self.bn.eps)
        shift = self.beta - ratio * self.mean
        shape = (1, -1, 1, 1)
        torch.addcmul(shift.to(z.dtype).view(shape), z, ratio.to(z.dtype).view(shape), out=z)

    def store(self) -> None:
        """Write the pooled statistics into the BatchNorm (unbiased variance, as BatchNorm's
        running statistics keep), in the units of the convolution's own output."""
        var = self.m2 / max(1, self.count - 1)
        self.bn.running_mean.copy_(self.m0 + self.mean * self.sd0)
        self.bn.running_var.copy_(var * self.sd0.square())


def _fused_layers(model: nn.Module) -> list[tuple[str, ConvNormAct]] | None:
    """Every (name, ConvNormAct) whose BatchNorm the fused pass can measure, or None when some
    BatchNorm of ``model`` is elsewhere (or of another kind) and only train mode measures it."""
    if not isinstance(model, EfficientNet):
        return None
    pairs = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, ConvNormAct) and type(m.bn) is nn.BatchNorm2d
    ]
    covered = {id(m.bn) for _, m in pairs}
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (
            id(m) not in covered or m.running_mean is None or m.running_var is None
        ):
            return None
    return pairs


@torch.no_grad()
def measure_batchnorm(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    channels_last: bool = True,
    positions: int | None = POSITIONS,
    seed: int = 0,
) -> tuple[int, str]:
    """Set every BatchNorm's running statistics of ``model`` to those of the images in
    ``batches`` (no weight changes; ``model`` ends in eval mode). Returns the number of images
    seen and how they were measured: ``"fused"`` or ``"train-mode"``.

    ``positions`` bounds the pixel positions read per BatchNorm and batch (see
    :func:`sample_size`; ``None`` reads all of them: exact, and slower); ``seed`` draws them.
    """
    pairs = _fused_layers(model)
    if pairs is None:
        return _measure_in_train_mode(model, batches, channels_last=channels_last), "train-mode"
    from effnet.export.fold import optimize

    model.eval()
    fast = optimize(model, channels_last=channels_last, check=False)
    fused = dict(fast.named_modules())
    layers = [_fold_standardised(m, fused[name]) for name, m in pairs]
    sampler = _Sampler(positions, seed)

    def hook(layer: _Layer) -> Any:
        def measure(_module: nn.Module, _inputs: Any, z: torch.Tensor) -> torch.Tensor:
            layer.add(sampler.sample(z))
            layer.normalise_(z)
            return z

        return measure

    handles = [
        fused[name].conv.register_forward_hook(hook(layer))
        for (name, _), layer in zip(pairs, layers)
    ]
    seen = batches_seen = 0
    try:
        for images in batches:
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            fast(images)
            seen += images.shape[0]
            batches_seen += 1
    finally:
        for handle in handles:
            handle.remove()
    if seen:
        for layer in layers:
            layer.store()
            if layer.bn.num_batches_tracked is not None:
                layer.bn.num_batches_tracked.fill_(batches_seen)
    return seen, "fused"


@torch.no_grad()
def _fold_standardised(trained: ConvNormAct, fused: nn.Module) -> _Layer:
    """Fold ``trained``'s convolution into ``fused``'s with the statistics alone (no gamma or
    beta): its output is ``(y - m0) / sd0``. Returns the layer's bookkeeping."""
    bn = trained.bn
    sd0 = torch.sqrt(bn.running_var.float() + bn.eps)
    scale = 1.0 / sd0
    conv = fused.conv
    conv.weight.copy_(trained.conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype))
    bias = -bn.running_mean.float() * scale
    if trained.conv.bias is not None:
        bias = bias + trained.conv.bias.float() * scale
    conv.bias.copy_(bias.to(conv.bias.dtype))
    gamma = bn.weight if bn.weight is not None else torch.ones_like(sd0)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(sd0)
    acc = torch.float32 if sd0.device.type == "mps" else torch.float64
    moments = (t.detach().to(acc) for t in (bn.running_mean, sd0, gamma, beta))
    return _Layer(bn, *moments, dtype=acc)


class _Sampler:
    """The seeded sample of positions each hook reads from a convolution's output."""

    def __init__(self, positions: int | None, seed: int) -> None:
        self.positions = positions
        self.generator = torch.Generator().manual_seed(seed)

    def _draw(self, n: int, hw: int, k: int, device: torch.device) -> torch.Tensor:
        """``k`` positions (rounded up to a multiple of ``n``), the same number from every
        image: the sample weighs images equally, as their full statistics do."""
        per_image = -(k // -n)
        within = torch.randint(hw, (n, per_image), generator=self.generator)
        return (within + torch.arange(n).unsqueeze(1) * hw).flatten().to(device)

    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """(positions, C) values of ``z`` (N, C, H, W), in float32."""
        n, c, h, w = z.shape
        total = n * h * w
        k = sample_size(total, c, self.positions)
        if z.is_contiguous(memory_format=torch.channels_last):
            rows = z.permute(0, 2, 3, 1).reshape(total, c)  # a view: one row per position
            sample = rows if k == total else rows.index_select(0, self._draw(n, h * w, k, z.device))
        else:
            flat = z.flatten(2)  # (N, C, H*W)
            if k == total:
                sample = flat.transpose(1, 2).reshape(total, c)
            else:
                idx = self._draw(n, h * w, k, z.device)
                sample = flat[idx // (h * w), :, idx % (h * w)]  # (k, C)
        return sample.float()


def _measure_in_train_mode(
    model: nn.Module, batches: Iterable[torch.Tensor], *, channels_last: bool
) -> int:
    """The textbook pass: train-mode BatchNorm, momentum ``n_batch / n_seen`` so every image
    weighs the same (the running means become the exact means over the images seen)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    model.train()  # batch statistics everywhere ...
    for m in model.modules():
        if isinstance(m, (DropPath, nn.Dropout)):
            m.eval()  # ... but no random drops: the statistics of the plain network
    for bn in bns:
        bn.reset_running_stats()
    seen = 0
    try:
        for images in batches:
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            seen += images.shape[0]
            for bn in bns:
                bn.momentum = images.shape[0] / seen
            model(images)
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.eval()
    return seen
