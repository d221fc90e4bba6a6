"""The phases of a run: BatchNorm recalibration, the head on a frozen backbone (on cached
features when possible), and training everything (with an optional progressive schedule).

Both training phases run the one loop, :func:`effnet.train.loop.fit`, and end every epoch with
:func:`effnet.train.run.end_epoch` (validate, log, checkpoint). Phase 1 on cached features is the
one exception: it trains the classifier alone, batch for batch on what the image loader gives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from effnet.data import MixupCutmix, is_deterministic, train_transform
from effnet.errors import ConfigError
from effnet.layers import DropPath
from effnet.train.checkpoint import RunState
from effnet.train.config import FinetuneConfig
from effnet.train.ema import ModelEma
from effnet.train.loaders import epoch_seed, make_loader, optimizer_steps
from effnet.train.loop import Epoch, EpochStats, TrainSetup, extract_features, fit
from effnet.train.optim import build_optimizer, build_scheduler, layer_decay_scales
from effnet.train.progressive import ProgressiveSchedule
from effnet.train.run import Run, end_epoch, freeze_backbone, freeze_early_stages, make_loss
from effnet.train.syncbn import convert_sync_batchnorm

__all__ = ["EpochKnobs", "epoch_knobs", "phase_full", "phase_head", "recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(run: Run) -> float:
    """Re-estimate every BatchNorm's running statistics on the training images (AdaBN); returns
    the seconds it took.

    Pretrained statistics describe ImageNet. The frozen backbone of phase 1 normalises the target
    data with them, but phase 2 trains with batch statistics of the target data: the head learnt
    in phase 1 then sees shifted features and the loss jumps when phase 2 starts. Measuring the
    statistics on the target data first (no weight changes) makes both phases see the same
    features. Deterministic: the eval-style transform and a seeded order.
    """
    c, model, ctx = run.config, run.model, run.ctx
    start = time.perf_counter()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    model.train()  # batch statistics everywhere ...
    for m in model.modules():
        if isinstance(m, (DropPath, nn.Dropout)):
            m.eval()  # ... but no random drops: the statistics of the plain network
    for bn in bns:
        bn.reset_running_stats()
    # A fixed shuffle so batches mix classes, and momentum n_batch / n_seen so every image
    # weighs the same: the running means become the exact dataset means.
    loader = make_loader(
        run.data.train,
        train_transform(model.preprocess, "none"),
        ctx,
        batch_size=c.eval_batch_size,
        seed=c.seed,
        workers=c.workers,
        images=run.images,
        whole_epoch=True,
    )
    seen = 0
    for images, _ in loader:
        images = images.to(ctx.device)
        if c.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        seen += images.shape[0]
        for bn in bns:
            bn.momentum = images.shape[0] / seen
        model(images)
    if ctx.enabled:  # every rank saw its own shard: pool the statistics, weighted by images
        count = ctx.all_reduce_sum(
            torch.tensor([float(seen)], dtype=torch.float64, device=ctx.device)
        )
        for bn in bns:
            for stat in (bn.running_mean, bn.running_var):
                if stat is not None:
                    stat.copy_((ctx.all_reduce_sum(stat.double() * seen) / count).to(stat.dtype))
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.eval()
    seconds = round(time.perf_counter() - start, 2)
    run.log(f"recalibrated {len(bns)} BatchNorm layers on the training images ({seconds:.1f}s)")
    return seconds


# ----------------------------------------------------------------------------------------------
# phase 1: the new head on a frozen backbone


def phase_head(run: Run, state: RunState) -> dict[str, float]:
    """Train the classifier on the frozen backbone; returns its timings."""
    c, model, ctx = run.config, run.model, run.ctx
    freeze_backbone(model, frozen=True)
    optimizer = build_optimizer(model.named_parameters(), "adamw", c.head_lr, 1e-4)
    setup = TrainSetup(
        model,
        optimizer,
        ctx,
        amp_dtype=run.amp_dtype,
        channels_last=c.channels_last,
        progress=c.progress,
        frozen_backbone=True,
    )
    state.restore("head", setup, None)
    loss_fn = make_loss(c, run.data, ctx.device, mixing=False)
    cached = c.cache_features and is_deterministic(c.head_augment) and not ctx.enabled
    start = time.perf_counter()
    epochs = range(state.done("head", c.head_epochs), c.head_epochs)

    def end(epoch: int, stats: EpochStats) -> bool:
        state.capture("head", epoch, setup, model)  # the whole model: resume starts from it
        row = {"phase": "head", "epoch": epoch + 1, "lr": c.head_lr}
        end_epoch(run, state, row, stats, model)
        return False

    def plan(epoch: int) -> Epoch:
        seed = epoch_seed(c.seed, "head", epoch)
        transform = train_transform(model.preprocess, c.head_augment, vflip=c.vflip)
        loader = _train_loader(run, transform, seed)
        return Epoch(loader, loss_fn, seed, desc=f"head {epoch + 1}/{c.head_epochs}")

    if cached:
        features, labels = _head_features(run)
        for epoch in epochs:
            seed = epoch_seed(c.seed, "head", epoch)
            torch.manual_seed(seed)
            end(epoch, _head_epoch_cached(run, optimizer, loss_fn, features, labels, seed))
    else:
        fit(setup, epochs, plan, end)
    return {
        "head_seconds": round(time.perf_counter() - start, 2),
        "head_cached_features": float(cached),
    }


def _train_loader(run: Run, transform: Any, seed: int) -> Any:
    c = run.config
    return make_loader(
        run.data.train,
        transform,
        run.ctx,
        batch_size=c.batch_size,
        seed=seed,
        workers=c.workers,
        balance=c.balance == "sampler",
        images=run.images,
    )


def _head_features(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen backbone's pooled features of every training image, in dataset order: the
    transform the uncached path would use, computed once."""
    c, start = run.config, time.perf_counter()
    loader = make_loader(
        run.data.train,
        train_transform(run.model.preprocess, "none"),
        run.ctx,
        batch_size=c.eval_batch_size,
        workers=c.workers,
        images=run.images,
    )
    features, labels = extract_features(
        run.model,
        loader,
        run.ctx,
        amp_dtype=run.amp_dtype,
        channels_last=c.channels_last,
        progress=c.progress,
    )
    run.log(f"head: cached {len(labels)} feature vectors in {time.perf_counter() - start:.1f}s")
    return features, labels


def _head_epoch_cached(
    run: Run,
    optimizer: torch.optim.Optimizer,
    loss_fn: Any,
    features: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
) -> EpochStats:
    """One head epoch over cached features, batch for batch what the image loader would give
    (its batch sampler: the same order, the same dropped last batch)."""
    model, device = run.model, run.ctx.device
    batches = _train_loader(run, None, seed).batch_sampler
    assert batches is not None
    start = time.perf_counter()
    model.dropout.train()
    total_loss = correct = seen = 0.0
    for indices in batches:
        idx = torch.tensor(list(indices))
        x, y = features[idx].to(device), labels[idx].to(device)
        logits = model.classifier(model.dropout(x))
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    model.dropout.eval()
    return EpochStats(total_loss / seen, correct / seen, int(seen), time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------
# phase 2: everything


@dataclass(frozen=True)
class EpochKnobs:
    """What a phase-2 epoch trains with: the config's values, or the progressive schedule's."""

    size: int | None
    """Image size (None: the model's preprocessing size)."""
    magnitude: int | None
    mixup: float
    cutmix: float
    dropout: float | None
    """Classifier dropout to set (None: leave the model's)."""


def epoch_knobs(c: FinetuneConfig, schedule: ProgressiveSchedule | None, epoch: int) -> EpochKnobs:
    """Image size, RandAugment magnitude, mixup/cutmix alpha and dropout for ``epoch``."""
    if schedule is None:
        return EpochKnobs(None, c.magnitude, c.mixup, c.cutmix, None)
    v = schedule.at_epoch(epoch, c.epochs)
    if v.magnitude is not None and c.augment not in ("medium", "heavy"):
        raise ConfigError(
            f"the progressive schedule sets RandAugment magnitudes, but augment is "
            f"{c.augment!r}; use --augment medium or heavy (they include RandAugment)"
        )
    return EpochKnobs(
        size=v.size,
        magnitude=c.magnitude if v.magnitude is None else v.magnitude,
        mixup=c.mixup if v.mixup is None else v.mixup,
        cutmix=c.cutmix if v.cutmix is None else v.cutmix,
        dropout=v.dropout,
    )


def _full_setup(run: Run, state: RunState) -> TrainSetup:
    """The model (DDP-wrapped under torchrun), optimizer, schedule, scaler and EMA of phase 2,
    restored from ``state`` when the run stopped in phase 2."""
    c, model, ctx = run.config, run.model, run.ctx
    freeze_backbone(model, frozen=False)
    frozen = freeze_early_stages(model, c.freeze_stages)
    train_model: nn.Module = model
    if ctx.enabled:
        if c.sync_bn:
            # swaps BatchNorm modules in place: parameters and state-dict keys stay the same
            convert_sync_batchnorm(model, ctx.device)
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    if c.grad_checkpointing:
        model.set_grad_checkpointing(True)  # the EMA and the saved weights are unaffected
    if c.compile:
        train_model = torch.compile(train_model)  # forward and backward; state stays `model`'s
    scales = layer_decay_scales(model, c.layer_decay) if c.layer_decay else None
    optimizer = build_optimizer(
        model.named_parameters(), c.optimizer, c.lr, c.weight_decay, c.momentum, scales
    )
    per_epoch = optimizer_steps(_train_loader(run, None, 0), c.accum_steps)
    scheduler = build_scheduler(optimizer, c, per_epoch)
    scaler = torch.amp.GradScaler("cuda") if run.amp_dtype == torch.float16 else None
    ema = ModelEma(model, c.ema) if c.ema > 0 else None
    setup = TrainSetup(
        train_model,
        optimizer,
        ctx,
        scheduler=scheduler,
        scaler=scaler,
        ema=ema,
        ema_source=model,
        amp_dtype=run.amp_dtype,
        accum_steps=c.accum_steps,
        grad_clip=c.grad_clip,
        channels_last=c.channels_last,
        progress=c.progress,
        frozen_modules=frozen,
    )
    state.restore("full", setup, model)
    return setup


def phase_full(run: Run, state: RunState, on_step: Any = None) -> dict[str, float]:
    """Train everything; returns its timings. ``on_step`` runs after every optimizer step."""
    c, model, ctx = run.config, run.model, run.ctx
    first = state.done("full", c.epochs)
    if first == 0:
        state.stale_epochs = 0  # early stopping counts phase-2 epochs only
    setup = _full_setup(run, state)
    setup.on_step = on_step
    schedule = ProgressiveSchedule.parse(c.progressive) if c.progressive else None
    if schedule is not None and first == 0:
        run.log("progressive learning: " + schedule.describe(c.epochs))

    def plan(epoch: int) -> Epoch:
        seed = epoch_seed(c.seed, "full", epoch)
        knobs = epoch_knobs(c, schedule, epoch)
        if knobs.dropout is not None:
            model.dropout.p = knobs.dropout
        mixing = knobs.mixup > 0 or knobs.cutmix > 0
        mix = None
        if mixing:
            n = run.data.num_classes
            mix = MixupCutmix(
                n, knobs.mixup, knobs.cutmix, label_smoothing=c.label_smoothing, seed=seed
            )
        transform = train_transform(
            model.preprocess,
            c.augment,
            magnitude=knobs.magnitude,
            vflip=c.vflip,
            size=knobs.size,
            auto_augment=c.auto_augment,
            erase_prob=c.random_erase,
        )
        return Epoch(
            _train_loader(run, transform, seed),
            make_loss(c, run.data, ctx.device, mixing),
            seed + 7_919 * ctx.rank,  # dropout, drop-path and mixing differ per rank
            mix=mix,
            desc=f"full {epoch + 1}/{c.epochs}",
        )

    def end(epoch: int, stats: EpochStats) -> bool:
        assert setup.scheduler is not None
        state.capture("full", epoch, setup, model)
        # the peak rate: with --layer-decay the groups run from the stem's rate up to this
        row = {"phase": "full", "epoch": epoch + 1, "lr": max(setup.scheduler.get_last_lr())}
        if schedule is not None:
            row["size"] = epoch_knobs(c, schedule, epoch).size
        end_epoch(run, state, row, stats, setup.ema.module if setup.ema else model)
        stop = (
            bool(c.early_stop) and run.data.val is not None and state.stale_epochs >= c.early_stop
        )
        if stop:
            run.log(
                f"early stop: no val improvement for {state.stale_epochs} epochs "
                f"(best: {state.best_epoch})"
            )
        return stop

    start = time.perf_counter()
    fit(setup, range(first, c.epochs), plan, end)
    if setup.ema is not None:
        model.load_state_dict(setup.ema.module.state_dict())
    return {"full_seconds": round(time.perf_counter() - start, 2)}
