"""Phase 1 on cached features: with the backbone frozen and no random augmentation, its output
for an image never changes, so compute the pooled features once and train only the head."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from effnet.train.distributed import DistContext
from effnet.train.loop import autocast

__all__ = ["extract_features"]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    ctx: DistContext,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = True,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled pre-logit features (N, C) and labels (N,) in the loader's order."""
    model.eval()
    feats, labels = [], []
    total = len(loader)  # type: ignore[arg-type]
    for images, y in tqdm(
        loader,
        total=total,
        desc=desc,
        leave=False,
        disable=None if progress and ctx.is_main else True,
    ):
        images = images.to(ctx.device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(ctx.device, amp_dtype):
            f = model.forward_head(model.forward_features(images), pre_logits=True)
        feats.append(f.float().cpu())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)
