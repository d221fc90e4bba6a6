"""Batch-level Mixup / CutMix with soft targets: torchvision's ``v2.MixUp`` and ``v2.CutMix``.

torchvision draws the mixing weight, the CutMix box and the pairing (each image with its
neighbour, ``roll(1, 0)``; the sampler has shuffled the batch), and adjusts the CutMix weight to
the area of the box after clipping. What this module adds around them:

* **label smoothing** before mixing (torchvision mixes one-hot targets; it takes soft targets
  too, so the smoothed ones are handed in, and a row still sums to 1);
* **the choice per batch** of ``prob`` (mix at all) and ``switch_prob`` (CutMix rather than
  Mixup), timm's ``Mixup`` settings;
* **its own random stream**, seeded by ``seed`` and kept in the object: the draws do not depend
  on what else uses torch's global generator (dropout, stochastic depth), so an epoch's mixing is
  the same with any model and a resumed run mixes exactly as an uninterrupted one;
* **alphas that change between progressive-learning stages** (:meth:`set_alphas` builds new
  torchvision transforms; theirs fix alpha at construction).
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

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
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing
        generator = torch.Generator()
        if seed is None:
            generator.seed()  # non-deterministic, and torch's global generator untouched
        else:
            generator.manual_seed(seed)
        self._rng_state = generator.get_state()
        self.set_alphas(mixup_alpha, cutmix_alpha)

    def set_alphas(self, mixup_alpha: float, cutmix_alpha: float) -> None:
        """Change the mixing strength (between progressive-learning stages)."""
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ConfigError(
                f"alphas must be >= 0 (0 disables), got mixup {mixup_alpha}, cutmix {cutmix_alpha}"
            )
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        n = self.num_classes
        self._mixup = v2.MixUp(alpha=self.mixup_alpha, num_classes=n) if mixup_alpha else None
        self._cutmix = v2.CutMix(alpha=self.cutmix_alpha, num_classes=n) if cutmix_alpha else None

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
        if not self.enabled:
            return images, targets
        # torchvision draws from torch's global generator: run it on this object's stream
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng_state)
            if float(torch.rand(())) < self.prob:
                use_cutmix = self._cutmix is not None and (
                    self._mixup is None or float(torch.rand(())) < self.switch_prob
                )
                mix = self._cutmix if use_cutmix else self._mixup
                assert mix is not None  # enabled: at least one alpha is > 0
                images, targets = mix(images, targets)
            self._rng_state = torch.get_rng_state()
        return images, targets
