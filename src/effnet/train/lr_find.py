"""The learning-rate range test (``--lr auto``; fastai's ``lr_find``, Smith 2015): train a copy
of the model for a few dozen steps while the learning rate grows geometrically, and take the
rate a decade below the one where the smoothed loss was lowest.

It runs after phase 1 (the new head is trained, so the loss reflects the backbone), through the
one training loop (:func:`effnet.train.loop.train_one_epoch`) with an exponential schedule; the
model it trains is a copy, thrown away after. Images are capped at :data:`MAX_SIZE` px: the
curve's shape depends on the data and the weights far more than on the resolution.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from effnet.data import train_transform
from effnet.train.loaders import epoch_seed, make_loader
from effnet.train.loop import TrainSetup, train_one_epoch
from effnet.train.optim import build_optimizer
from effnet.train.run import Run, freeze_backbone, make_loss

__all__ = ["LrFind", "find_lr"]

START, END = 1e-6, 1e-1
STEPS = 60
MAX_SIZE = 160
SMOOTHING = 0.9
DIVERGED = 4.0
"""The test stops once the smoothed loss is this many times its minimum."""
LIMITS = (1e-5, 1e-2)


@dataclass
class LrFind:
    lr: float
    """The suggestion: the rate at the smoothed loss's minimum, divided by 10."""
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    """Smoothed (bias-corrected exponential average), one per step."""

    def to_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "lrs": self.lrs, "losses": self.losses}


class _Stop(Exception):
    pass


def find_lr(run: Run, steps: int = STEPS) -> LrFind:
    """Run the range test on a copy of ``run.model``; returns the suggestion and the curve."""
    c = run.config
    model = copy.deepcopy(run.model)
    freeze_backbone(model, frozen=False)
    optimizer = build_optimizer(model.named_parameters(), c.optimizer, START, c.weight_decay)
    growth = (END / START) ** (1.0 / max(1, steps - 1))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: growth**step)
    result = LrFind(lr=1e-3)
    raw: list[float] = []
    base = make_loss(c, run.data, run.ctx.device, mixing=False)

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = base(logits, targets)
        raw.append(float(loss.item()))
        return loss

    def on_step() -> None:
        i = len(raw)
        smooth = (1 - SMOOTHING) * sum(SMOOTHING ** (i - k) * v for k, v in enumerate(raw, 1))
        smooth /= 1 - SMOOTHING**i  # bias correction of the running average
        result.lrs.append(START * growth ** (i - 1))
        result.losses.append(smooth)
        if not math.isfinite(smooth) or smooth > DIVERGED * min(result.losses) or i >= steps:
            raise _Stop

    setup = TrainSetup(model, optimizer, run.ctx, scheduler=scheduler, amp_dtype=run.amp_dtype,
                       channels_last=c.channels_last, on_step=on_step)  # fmt: skip
    size = min(int(model.preprocess.input_size), MAX_SIZE)
    transform = train_transform(model.preprocess, c.augment, vflip=c.vflip, size=size)
    try:
        for epoch in range(steps):  # small sets: as many passes as the steps need
            seed = epoch_seed(c.seed, "lr_find", epoch)
            loader = make_loader(run.data.train, transform, run.ctx, batch_size=c.batch_size,
                                 seed=seed, workers=c.workers, images=run.images)  # fmt: skip
            torch.manual_seed(seed)
            train_one_epoch(setup, loader, loss_fn, desc="lr find")
    except _Stop:
        pass
    if result.losses:
        best = min(range(len(result.losses)), key=result.losses.__getitem__)
        result.lr = min(max(result.lrs[best] / 10, LIMITS[0]), LIMITS[1])
    run.log(
        f"lr range test: {len(result.losses)} steps from {START:g}; lowest smoothed loss at "
        f"{result.lrs[best] if result.losses else float('nan'):.2g}: lr {result.lr:.2g}"
    )
    return result
