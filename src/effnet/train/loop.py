"""The training loop as plain functions: one epoch of training, one pass of evaluation.

Both work on a single process or under ``torchrun`` (a :class:`DistContext`); both read top to
bottom: move the batch, forward under autocast, loss, backward, step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from effnet.train.distributed import DistContext
from effnet.train.ema import ModelEma

__all__ = ["EpochStats", "EvalResult", "autocast", "evaluate", "resolve_amp", "train_one_epoch"]


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


@dataclass
class EvalResult:
    loss: float
    acc: float
    logits: torch.Tensor  # (N, C) float32, in dataset order
    targets: torch.Tensor  # (N,)
    seconds: float

    @property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(1)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None = full fp32)."""
    if amp == "none":
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("fp16 autocast needs a CUDA device; use --amp bf16 on CPU")
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    # auto: bf16 on GPUs that support it; fp32 on CPU, where bf16 convolutions are only faster
    # with AMX/AVX512-BF16 kernels and cost accuracy on fine details.
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _prepare(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _bar(iterable: Iterable, total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit="batch",
        leave=False,
        disable=None if enabled else True,
        dynamic_ncols=True,
    )


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ctx: DistContext,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
    ema: ModelEma | None = None,
    ema_model: nn.Module | None = None,
    mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    accum_steps: int = 1,
    grad_clip: float = 0.0,
    channels_last: bool = False,
    progress: bool = True,
    desc: str = "train",
    on_step: Callable[[], None] | None = None,
    frozen_backbone: bool = False,
    frozen_modules: tuple[nn.Module, ...] = (),
) -> EpochStats:
    """One pass over ``loader``; returns loss and accuracy averaged over all ranks.

    ``frozen_backbone`` keeps everything but the head's dropout in eval mode: BatchNorm
    statistics stay frozen and stochastic depth is off, so the backbone is a fixed feature
    extractor (phase 1 of fine-tuning). ``frozen_modules`` stay in eval mode while the rest
    trains (the early stages that phase 2 may leave frozen).
    """
    if frozen_backbone:
        model.eval()
        getattr(getattr(model, "module", model), "dropout", nn.Identity()).train()
    else:
        model.train()
        for module in frozen_modules:
            module.eval()
    device = ctx.device
    total = len(loader)  # type: ignore[arg-type]
    sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    bar = _bar(loader, total, desc, progress and ctx.is_main)
    for i, (images, labels) in enumerate(bar):
        images = _prepare(images, device, channels_last)
        labels = labels.to(device, non_blocking=True)
        targets = labels
        if mix is not None:
            images, targets = mix(images, labels)  # soft targets
        last_micro = (i + 1) % accum_steps == 0 or i + 1 == total
        sync = (
            contextlib.nullcontext()
            if last_micro or not hasattr(model, "no_sync")
            else (model.no_sync())
        )
        with sync:
            with autocast(device, amp_dtype):
                logits = model(images)
                loss = loss_fn(logits.float(), targets)
            scaled = loss / accum_steps
            (scaler.scale(scaled) if scaler else scaled).backward()
        if last_micro:
            if grad_clip > 0:
                if scaler:
                    scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
            if ema is not None:
                ema.update(ema_model if ema_model is not None else model)
            if on_step is not None:
                on_step()
        n = labels.shape[0]
        with torch.no_grad():
            hard = targets.argmax(1) if targets.ndim == 2 else targets
            sums += torch.tensor(
                [loss.item() * n, (logits.argmax(1) == hard).sum().item(), n], dtype=torch.float64
            )
        if ctx.is_main and progress:
            seconds = time.perf_counter() - start
            bar.set_postfix(
                loss=f"{sums[0] / sums[2]:.4f}",
                acc=f"{sums[1] / sums[2]:.3f}",
                img_s=f"{sums[2] * ctx.world_size / seconds:.1f}",
            )
    bar.close()
    ctx.all_reduce_sum(sums)
    seconds = time.perf_counter() - start
    n = max(1.0, float(sums[2]))
    return EpochStats(float(sums[0]) / n, float(sums[1]) / n, int(sums[2]), seconds)


def _flips(x: torch.Tensor, vertical: bool) -> Iterator[torch.Tensor]:
    yield x
    yield x.flip(-1)
    if vertical:  # for top/bottom-symmetric data trained with vertical flips too
        yield x.flip(-2)
        yield x.flip(-2, -1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    ctx: DistContext,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tta: bool = False,
    tta_vflip: bool = False,
    progress: bool = False,
    desc: str = "eval",
) -> EvalResult:
    """Logits for every sample (gathered from all ranks), mean cross-entropy and accuracy.

    ``tta`` averages the softmax over the image and its horizontal flip (``tta_vflip``: also
    the vertical and the double flip).
    """
    model.eval()
    device = ctx.device
    start = time.perf_counter()
    all_logits, all_targets = [], []
    total = len(loader)  # type: ignore[arg-type]
    for images, labels in _bar(loader, total, desc, progress and ctx.is_main):
        images = _prepare(images, device, channels_last)
        with autocast(device, amp_dtype):
            if tta:
                probs = torch.stack(
                    [model(v).float().softmax(1) for v in _flips(images, tta_vflip)]
                ).mean(0)
                logits = probs.clamp_min(1e-12).log()
            else:
                logits = model(images).float()
        all_logits.append(logits.cpu())
        all_targets.append(labels.cpu())
    logits = torch.cat(all_logits) if all_logits else torch.empty(0, 0)
    targets = torch.cat(all_targets) if all_targets else torch.empty(0, dtype=torch.long)
    if ctx.enabled:
        logits, targets = _gather_variable(logits, targets, ctx)
    loss = F.cross_entropy(logits, targets).item() if len(targets) else float("nan")
    acc = (logits.argmax(1) == targets).float().mean().item() if len(targets) else float("nan")
    return EvalResult(loss, acc, logits, targets, time.perf_counter() - start)


def _gather_variable(
    logits: torch.Tensor, targets: torch.Tensor, ctx: DistContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each rank evaluated a strided shard (rank, rank + world, ...): interleave them back."""
    import torch.distributed as dist

    parts: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * ctx.world_size
    dist.all_gather_object(parts, (logits, targets))
    n = sum(len(p[1]) for p in parts if p is not None)
    out_logits = torch.empty(n, logits.shape[1])
    out_targets = torch.empty(n, dtype=targets.dtype)
    for rank, part in enumerate(parts):
        assert part is not None
        out_logits[rank :: ctx.world_size] = part[0]
        out_targets[rank :: ctx.world_size] = part[1]
    return out_logits, out_targets
