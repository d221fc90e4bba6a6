"""Optimizers with the usual parameter groups, and per-step learning-rate schedules.

Fine-tuning, training from scratch and the scaling lab's trials all build theirs here, from a
config that names its settings the same way (:class:`OptimSettings`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import torch
from torch import nn

from effnet.errors import ConfigError

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "OptimSettings",
    "adamw",
    "build_optimizer",
    "build_scheduler",
    "layer_decay_scales",
    "layer_ids",
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
    params: Iterable[tuple[str, nn.Parameter]],
    weight_decay: float,
    lr_scale: Mapping[str, float] | None = None,
) -> list[dict[str, object]]:
    """Weight decay on conv/linear weights only: never on BatchNorm affine terms or biases.

    ``lr_scale`` (parameter name -> multiplier, :func:`layer_decay_scales`) splits the groups
    further by learning-rate multiplier, from the smallest (the input) up; each such group
    carries its ``lr_scale``.
    """
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in params:
        if not p.requires_grad:
            continue
        scale = lr_scale.get(name, 1.0) if lr_scale is not None else 1.0
        groups.setdefault((scale, p.ndim > 1), []).append(p)
    out: list[dict[str, object]] = []
    for scale, decay in sorted(groups, key=lambda k: (k[0], not k[1])):
        group: dict[str, object] = {
            "params": groups[scale, decay],
            "weight_decay": weight_decay if decay else 0.0,
        }
        if lr_scale is not None:
            group["lr_scale"] = float(scale)
        out.append(group)
    return out


_JOIN_PREVIOUS = 99999
"""A ``group_matcher`` suffix that puts the matched parameters in the layer before them
(timm's convention: EfficientNet's conv head trains with the last block)."""


def layer_ids(model: nn.Module, coarse: bool = False) -> dict[str, int]:
    """Each parameter's layer, numbered from the input (0) to the output, by the model's
    ``group_matcher`` as timm reads one.

    The matcher's groups are in order (stem, blocks, ...); within a group the numbers a pattern
    captures (stage, block) order the layers; a pattern with the suffix ``(99999,)`` joins the
    layer before it; a parameter no pattern matches (the classifier) is in the last layer.
    """
    rules = []
    for order, spec in enumerate(model.group_matcher(coarse=coarse).values()):
        for pattern, suffix in [(spec, None)] if isinstance(spec, str) else spec:
            rules.append((re.compile(pattern), order, tuple(suffix or ())))

    def key(name: str) -> tuple[float, ...]:
        for regex, order, suffix in rules:
            found = regex.match(name)
            if found:
                return (order, *(int(g) for g in found.groups()), *suffix)
        return (math.inf,)

    keys = {name: key(name) for name, _ in model.named_parameters()}
    layer_of: dict[tuple[float, ...], int] = {}
    layer = -1
    for k in sorted(set(keys.values())):
        if layer < 0 or k[-1] != _JOIN_PREVIOUS:
            layer += 1
        layer_of[k] = layer
    return {name: layer_of[k] for name, k in keys.items()}


def layer_decay_scales(model: nn.Module, decay: float, coarse: bool = False) -> dict[str, float]:
    """Layer-wise learning-rate decay (timm's ``--layer-decay``, BEiT's fine-tuning recipe):
    layer ``i`` of ``n`` (:func:`layer_ids`) trains at ``lr * decay ** (n - 1 - i)``, so the
    classifier keeps the full rate and the stem gets the smallest."""
    if not 0.0 < decay <= 1.0:
        raise ConfigError(f"layer_decay must be in (0, 1] (1 = off), got {decay}")
    ids = layer_ids(model, coarse)
    last = max(ids.values())
    return {name: decay ** (last - i) for name, i in ids.items()}


def build_optimizer(
    named_params: Iterable[tuple[str, nn.Parameter]],
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    lr_scale: Mapping[str, float] | None = None,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over :func:`param_groups`; with ``lr_scale`` each group's
    learning rate is ``lr`` times its multiplier (the schedule then scales them all alike)."""
    groups = param_groups(named_params, weight_decay, lr_scale)
    if not groups:
        raise ConfigError("no trainable parameters: every parameter has requires_grad=False")
    for group in groups:
        scale = group.get("lr_scale")
        if isinstance(scale, float):
            group["lr"] = lr * scale
    if name == "adamw":
        return adamw(groups, lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "rmsprop":
        # the paper's optimizer: decay 0.9, momentum 0.9, eps 1e-3 in TF terms
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, momentum=momentum, eps=1e-3)
    raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def adamw(params: Iterable[torch.Tensor] | list[dict], lr: float) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel where this torch has one for the parameters' device (CPU
    from torch 2.4, CUDA): one pass over each parameter instead of a dozen elementwise ops, the
    same update to float rounding. On Lite0 and B0 the optimizer step drops from 14-18 ms to
    4-5 ms on 2 CPU cores (benchmarks/optimizer_step.py; train_throughput.py has the whole step)."""
    params = list(params)
    nested = bool(params) and isinstance(params[0], dict)
    tensors = [p for g in params for p in g["params"]] if nested else params
    if all(t.device.type in ("cpu", "cuda") and t.is_floating_point() for t in tensors):
        try:
            return torch.optim.AdamW(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):  # torch < 2.4 has no fused CPU kernel
            pass
    return torch.optim.AdamW(params, lr=lr)


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
