"""Synchronised BatchNorm that also works on CPU (gloo).

``torch.nn.SyncBatchNorm`` only runs on GPUs. Here the per-channel sums and sums of squares are
all-reduced with ``torch.distributed.nn.functional.all_reduce``, which is differentiable (its
backward all-reduces the gradients), so plain autograd gives the exact gradient of the global
batch statistics on any backend. Under DDP this makes N processes with batch B compute what one
process with batch N*B computes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistributedBatchNorm2d", "convert_sync_batchnorm"]


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batch on every rank."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        n_local = x.numel() // x.shape[1]
        stats = torch.cat(
            [
                x.sum(dim=(0, 2, 3)),
                (x * x).sum(dim=(0, 2, 3)),
                x.new_full((1,), float(n_local)),
            ]
        )
        stats = all_reduce(stats)  # differentiable: gradients are all-reduced on the way back
        c = x.shape[1]
        count = stats[-1]
        mean = stats[:c] / count
        var = (stats[c : 2 * c] / count - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                unbiased = var * count / (count - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
                self.num_batches_tracked.add_(1)
        scale = torch.rsqrt(var + self.eps)
        shape = (1, c, 1, 1)
        y = (x - mean.reshape(shape)) * scale.reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """torch's SyncBatchNorm on GPUs; :class:`DistributedBatchNorm2d` elsewhere (e.g. CPU)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = DistributedBatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            )
            sync.load_state_dict(child.state_dict())
            sync.to(child.weight.device)
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return model
