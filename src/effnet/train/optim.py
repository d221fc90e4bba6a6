"""Optimizers with the usual parameter groups, and per-step learning-rate schedules.

Fine-tuning, training from scratch and the scaling lab's trials all build theirs here, from a
config that names its settings the same way (:class:`OptimSettings`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Protocol

import torch
from torch import nn

from effnet.errors import ConfigError

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "OptimSettings",
    "build_optimizer",
    "build_scheduler",
    "lr_lambda",
    "param_groups",
]

OPTIMIZERS = ("adamw", "sgd", "rmsprop")
SCHEDULES = ("cosine", "step", "constant")


class OptimSettings(Protocol):
    """The fields of :class:`~effnet.train.FinetuneConfig` and the lab's ``Recipe`` that
    decide the optimizer and the learning-rate schedule."""

    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    warmup_epochs: float
    min_lr: float
    step_epochs: float
    step_gamma: float
    epochs: int


def param_groups(
    params: Iterable[tuple[str, nn.Parameter]], weight_decay: float
) -> list[dict[str, object]]:
    """Weight decay on conv/linear weights only: never on BatchNorm affine terms or biases."""
    decay, no_decay = [], []
    for _, p in params:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups: list[dict[str, object]] = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    named_params: Iterable[tuple[str, nn.Parameter]],
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    groups = param_groups(named_params, weight_decay)
    if not groups:
        raise ConfigError("no trainable parameters: every parameter has requires_grad=False")
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "rmsprop":
        # the paper's optimizer: decay 0.9, momentum 0.9, eps 1e-3 in TF terms
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, momentum=momentum, eps=1e-3)
    raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, settings: OptimSettings, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warmup, then the configured decay, stepped once per optimizer step."""
    factor = lr_lambda(
        steps_per_epoch * settings.epochs,
        round(settings.warmup_epochs * steps_per_epoch),
        min_ratio=settings.min_lr / settings.lr,
        schedule=settings.schedule,
        step_every=round(settings.step_epochs * steps_per_epoch),
        step_gamma=settings.step_gamma,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def lr_lambda(
    total_steps: int,
    warmup_steps: int,
    min_ratio: float = 0.0,
    schedule: str = "cosine",
    step_every: int = 0,
    step_gamma: float = 0.97,
) -> Callable[[int], float]:
    """A LambdaLR factor per optimizer step: linear warmup, then cosine (or step) decay."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        if schedule == "step":
            return max(min_ratio, step_gamma ** ((step - warmup_steps) // max(1, step_every)))
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
