"""The training loop as plain functions: :func:`fit` runs epochs, :func:`train_one_epoch` one
pass over a loader, :func:`evaluate` one pass of evaluation.

Fine-tuning (both phases), training from scratch and every trial of the scaling lab train through
:func:`fit`. They all work on a single process or under ``torchrun`` (a :class:`DistContext`), and
all read top to bottom: move the batch, forward under autocast, loss, backward, step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from effnet.train.depthwise import fast_depthwise_grads
from effnet.train.distributed import DistContext
from effnet.train.ema import ModelEma

__all__ = [
    "Epoch",
    "EpochStats",
    "EvalResult",
    "TrainSetup",
    "autocast",
    "evaluate",
    "extract_features",
    "fit",
    "forward_all",
    "resolve_amp",
    "train_one_epoch",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


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
    view_logits: torch.Tensor | None = None
    """With test-time augmentation (``logits`` is then the log of the mean softmax over the
    flips): the logits of the unflipped image alone, what ``predict`` and an exported model
    compute (computed anyway, so free). None without TTA, where ``logits`` are those."""

    @property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(1)

    @classmethod
    def of(cls, logits: torch.Tensor, targets: torch.Tensor, seconds: float) -> EvalResult:
        """Mean cross-entropy and accuracy of ``logits`` for ``targets``."""
        if not len(targets):
            return cls(float("nan"), float("nan"), logits, targets, seconds)
        loss = F.cross_entropy(logits, targets).item()
        acc = (logits.argmax(1) == targets).float().mean().item()
        return cls(loss, acc, logits, targets, seconds)


@dataclass
class TrainSetup:
    """What trains and how a step is taken; the same for every epoch of a phase."""

    model: nn.Module
    """What forward and backward run on (the DDP wrapper under ``torchrun``)."""
    optimizer: torch.optim.Optimizer
    ctx: DistContext
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    """Stepped after every optimizer step."""
    scaler: torch.amp.GradScaler | None = None
    ema: ModelEma | None = None
    ema_source: nn.Module | None = None
    """The unwrapped model the EMA follows (default: ``model``)."""
    amp_dtype: torch.dtype | None = None
    accum_steps: int = 1
    grad_clip: float = 0.0
    channels_last: bool = False
    progress: bool = False
    frozen_backbone: bool = False
    """Everything but the head's dropout in eval mode: BatchNorm statistics frozen, no
    stochastic depth, so the backbone is a fixed feature extractor (phase 1 of fine-tuning)."""
    frozen_modules: tuple[nn.Module, ...] = ()
    """Kept in eval mode while the rest trains (early stages phase 2 may leave frozen)."""
    on_step: Callable[[], None] | None = None
    """Called after every optimizer step (progress hooks, tests)."""


@dataclass
class Epoch:
    """What one epoch trains on, decided before it starts (a progressive schedule changes it)."""

    loader: Batches
    loss_fn: LossFn
    seed: int
    """torch's global seed for the epoch: dropout, stochastic depth, in-process augmentation."""
    mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    desc: str = "train"


def fit(
    setup: TrainSetup,
    epochs: Iterable[int],
    plan: Callable[[int], Epoch],
    end_epoch: Callable[[int, EpochStats], bool] | None = None,
) -> list[EpochStats]:
    """Train for ``epochs``: each one as ``plan(epoch)`` describes, reseeded, then handed to
    ``end_epoch`` (validate, log, checkpoint), which returns True to stop early."""
    history = []
    for epoch in epochs:
        this = plan(epoch)
        torch.manual_seed(this.seed)
        stats = train_one_epoch(setup, this.loader, this.loss_fn, mix=this.mix, desc=this.desc)
        history.append(stats)
        if end_epoch is not None and end_epoch(epoch, stats):
            break
    return history


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None = full fp32)."""
    from effnet.errors import ConfigError

    if amp == "none":
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise ConfigError("fp16 autocast needs a CUDA device; use --amp bf16 on CPU")
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


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _bar(loader: Iterable[Any], desc: str, enabled: bool) -> tqdm:
    return tqdm(
        loader,
        total=len(loader) if hasattr(loader, "__len__") else None,
        desc=desc,
        unit="batch",
        leave=False,
        disable=None if enabled else True,
        dynamic_ncols=True,
    )


def _train_mode(setup: TrainSetup) -> None:
    model = setup.model
    if setup.frozen_backbone:
        model.eval()
        getattr(getattr(model, "module", model), "dropout", nn.Identity()).train()
        return
    model.train()
    for module in setup.frozen_modules:
        module.eval()


def _step(setup: TrainSetup) -> None:
    """Clip, step (through the grad scaler under fp16), zero, then the schedule and the EMA."""
    optimizer, scaler = setup.optimizer, setup.scaler
    if setup.grad_clip > 0:
        if scaler is not None:
            scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(setup.model.parameters(), setup.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if setup.scheduler is not None:
        setup.scheduler.step()
    if setup.ema is not None:
        setup.ema.update_parameters(setup.ema_source or setup.model)
    if setup.on_step is not None:
        setup.on_step()


def train_one_epoch(
    setup: TrainSetup,
    loader: Batches,
    loss_fn: LossFn,
    *,
    mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    desc: str = "train",
) -> EpochStats:
    """One pass over ``loader``; returns loss and accuracy averaged over all ranks.

    With ``accum_steps`` > 1 the gradients of that many batches are summed before a step (DDP
    synchronises only on the last of them).
    """
    _train_mode(setup)
    model, ctx = setup.model, setup.ctx
    total = len(loader) if hasattr(loader, "__len__") else 0
    start = time.perf_counter()
    setup.optimizer.zero_grad(set_to_none=True)
    bar = _bar(loader, desc, setup.progress and ctx.is_main)
    with fast_depthwise_grads(model):
        sums = _train_batches(setup, bar, loss_fn, mix, total, start)
    bar.close()
    ctx.all_reduce_sum(sums)
    seconds = time.perf_counter() - start
    n = max(1.0, float(sums[2]))
    return EpochStats(float(sums[0]) / n, float(sums[1]) / n, int(sums[2]), seconds)


def _train_batches(
    setup: TrainSetup,
    bar: tqdm,
    loss_fn: LossFn,
    mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None,
    total: int,
    start: float,
) -> torch.Tensor:
    """The batches of one epoch; returns (loss * n, correct, n) summed on this rank."""
    model, ctx = setup.model, setup.ctx
    sums = torch.zeros(3, dtype=torch.float64)
    for i, (images, labels) in enumerate(bar):
        images = _to_device(images, ctx.device, setup.channels_last)
        labels = labels.to(ctx.device, non_blocking=True)
        targets = labels
        if mix is not None:
            images, targets = mix(images, labels)  # soft targets
        last_micro = (i + 1) % setup.accum_steps == 0 or i + 1 == total
        no_sync = not last_micro and hasattr(model, "no_sync")
        with model.no_sync() if no_sync else contextlib.nullcontext():
            with autocast(ctx.device, setup.amp_dtype):
                logits = model(images)
                loss = loss_fn(logits.float(), targets)
            scaled = loss / setup.accum_steps
            (setup.scaler.scale(scaled) if setup.scaler else scaled).backward()
        if last_micro:
            _step(setup)
        with torch.no_grad():
            hard = targets.argmax(1) if targets.ndim == 2 else targets
            n = labels.shape[0]
            sums += torch.tensor(
                [loss.item() * n, (logits.argmax(1) == hard).sum().item(), n], dtype=torch.float64
            )
        if ctx.is_main and setup.progress:
            seconds = time.perf_counter() - start
            bar.set_postfix(
                loss=f"{sums[0] / sums[2]:.4f}",
                acc=f"{sums[1] / sums[2]:.3f}",
                img_s=f"{sums[2] * ctx.world_size / seconds:.1f}",
            )
    return sums


def _flips(x: torch.Tensor, vertical: bool) -> Iterator[torch.Tensor]:
    yield x
    yield x.flip(-1)
    if vertical:  # for top/bottom-symmetric data trained with vertical flips too
        yield x.flip(-2)
        yield x.flip(-2, -1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Batches,
    ctx: DistContext,
    *,
    tta: bool = False,
    tta_vflip: bool = False,
    **options: Any,
) -> EvalResult:
    """Logits for every sample (gathered from all ranks), mean cross-entropy and accuracy.

    ``tta`` averages the softmax over the image and its horizontal flip (``tta_vflip``: also
    the vertical and the double flip). ``options``: ``amp_dtype``, ``channels_last``,
    ``progress`` and ``desc``, as :func:`forward_all` takes them.
    """

    def logits(x: torch.Tensor) -> torch.Tensor:
        if not tta:
            return model(x)
        views = [model(v).float() for v in _flips(x, tta_vflip)]
        probs = torch.stack([v.softmax(1) for v in views])
        # the TTA output, and beside it the first view's own logits (see EvalResult)
        return torch.cat([probs.mean(0).clamp_min(1e-12).log(), views[0]], 1)

    model.eval()
    start = time.perf_counter()
    outputs, targets = forward_all(logits, loader, ctx, **options)
    if ctx.enabled:
        outputs, targets = _gather_variable(outputs, targets, ctx)
    view = None
    if tta and outputs.shape[1]:
        outputs, view = outputs.tensor_split(2, dim=1)
    result = EvalResult.of(outputs, targets, time.perf_counter() - start)
    result.view_logits = view
    return result


@torch.no_grad()
def extract_features(
    model: nn.Module, loader: Batches, ctx: DistContext, **options: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled pre-logit features (N, C) and labels (N,) in the loader's order (``options`` as
    :func:`forward_all` takes them).

    With the backbone frozen and no random augmentation an image's features never change:
    phase 1 of fine-tuning computes them once and trains the head on them.
    """
    model.eval()
    return forward_all(
        lambda x: model.forward_head(model.forward_features(x), pre_logits=True),
        loader,
        ctx,
        **{"desc": "features", **options},
    )


def forward_all(
    forward: Callable[[torch.Tensor], torch.Tensor],
    loader: Batches,
    ctx: DistContext,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "eval",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``forward`` of every batch (float32, on the CPU) and the labels, in the loader's order."""
    outputs, labels = [], []
    for images, y in _bar(loader, desc, progress and ctx.is_main):
        images = _to_device(images, ctx.device, channels_last)
        with autocast(ctx.device, amp_dtype):
            outputs.append(forward(images).float().cpu())
        labels.append(y.cpu())
    if not outputs:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(outputs), torch.cat(labels)


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
