"""Optimizers with the usual parameter groups, and per-step learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["build_optimizer", "lr_lambda", "param_groups"]


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
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "rmsprop":
        # the paper's optimizer: decay 0.9, momentum 0.9, eps 1e-3 in TF terms
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, momentum=momentum, eps=1e-3)
    raise ValueError(f"unknown optimizer {name!r}; expected adamw, sgd or rmsprop")


def lr_lambda(
    total_steps: int,
    warmup_steps: int,
    min_ratio: float = 0.0,
    schedule: str = "cosine",
    step_every: int = 0,
    step_gamma: float = 0.97,
):  # type: ignore[no-untyped-def]
    """A LambdaLR factor per optimizer step: linear warmup, then cosine (or step) decay."""
    if schedule not in ("cosine", "step", "constant"):
        raise ValueError(f"unknown schedule {schedule!r}; expected cosine, step or constant")

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
