"""Batch-level Mixup / CutMix with soft targets, written out so alphas can change mid-run.

torchvision's ``v2.MixUp`` / ``v2.CutMix`` fix alpha at construction; progressive learning
raises the mixing strength stage by stage, so here ``mixup_alpha`` and ``cutmix_alpha`` are
plain attributes. Each batch is paired with itself reversed (``x.flip(0)``), which needs no
random permutation and, with a shuffling sampler, pairs random images anyway.
"""

from __future__ import annotations

import math
import random

import torch

from effnet.errors import ConfigError

__all__ = ["MixupCutmix", "one_hot"]


def one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(N,) int labels -> (N, num_classes) float targets with label smoothing.

    Smoothing follows ``torch.nn.CrossEntropyLoss``: ``smoothing / num_classes`` everywhere plus
    ``1 - smoothing`` on the true class, so each row sums to 1.
    """
    if labels.ndim != 1 or labels.dtype.is_floating_point:
        raise ConfigError(
            f"expected (N,) integer class labels, got dtype {labels.dtype} shape "
            f"{tuple(labels.shape)}"
        )
    off = smoothing / num_classes
    targets = torch.full((labels.numel(), num_classes), off, device=labels.device)
    return targets.scatter_(1, labels.long().unsqueeze(1), 1.0 - smoothing + off)


class MixupCutmix:
    """``(images, int labels) -> (mixed images, soft targets)`` for one batch.

    With probability ``prob`` a batch is mixed: by CutMix with probability ``switch_prob`` when
    both alphas are > 0, else by whichever alpha is > 0. An alpha of 0 disables that method;
    with both at 0 (or ``prob`` 0) images pass through unchanged with one-hot (smoothed)
    targets. ``seed`` makes the draws reproducible; the state lives in this object only.
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        *,
        seed: int | None = None,
    ) -> None:
        if num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
        for name, value in (("prob", prob), ("switch_prob", switch_prob)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing
        self._rng = random.Random(seed)
        self.set_alphas(mixup_alpha, cutmix_alpha)

    def set_alphas(self, mixup_alpha: float, cutmix_alpha: float) -> None:
        """Change the mixing strength (between progressive-learning stages)."""
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ConfigError(
                f"alphas must be >= 0 (0 disables), got mixup {mixup_alpha}, cutmix {cutmix_alpha}"
            )
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[0] != labels.shape[0]:
            raise ConfigError(
                f"expected images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and "
                f"{tuple(labels.shape)}"
            )
        targets = one_hot(labels, self.num_classes, self.label_smoothing).to(images.dtype)
        if not self.enabled or self._rng.random() >= self.prob:
            return images, targets
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha == 0 or self._rng.random() < self.switch_prob
        )
        if use_cutmix:
            lam = self._rng.betavariate(self.cutmix_alpha, self.cutmix_alpha)
            images, lam = self._cutmix(images, lam)
        else:
            lam = self._rng.betavariate(self.mixup_alpha, self.mixup_alpha)
            images = images * lam + images.flip(0) * (1.0 - lam)
        return images, targets * lam + targets.flip(0) * (1.0 - lam)

    def _cutmix(self, images: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        """Paste a box of area ~(1 - lam) from the partner image; lam follows the clipped box."""
        h, w = images.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = self._rng.randrange(h), self._rng.randrange(w)
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        mixed = images.clone()
        mixed[..., y0:y1, x0:x1] = images.flip(0)[..., y0:y1, x0:x1]
        # The box is clipped at the borders, so the label weight uses its real area.
        return mixed, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
