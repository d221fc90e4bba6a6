"""The phases of a run: BatchNorm recalibration, the head on a frozen backbone (on cached
features when possible), and training everything (with an optional progressive schedule).

Both training phases run the one loop, :func:`effnet.train.loop.fit`, and end every epoch with
:func:`effnet.train.run.end_epoch` (validate, log, checkpoint). Phase 1 on cached features is the
one exception: it trains the classifier alone, batch for batch on what the image loader gives.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from effnet.data import MixupCutmix, is_deterministic, train_transform
from effnet.errors import ConfigError
from effnet.model import EfficientNet
from effnet.train.checkpoint import RunState
from effnet.train.config import FinetuneConfig, save_config
from effnet.train.ema import ModelEma
from effnet.train.loaders import epoch_seed, make_loader, optimizer_steps
from effnet.train.loop import Epoch, EpochStats, EvalResult, TrainSetup, extract_features, fit
from effnet.train.optim import build_optimizer, build_scheduler, layer_decay_scales
from effnet.train.plan import adapted_epochs, trimmed_epochs
from effnet.train.progressive import ProgressiveSchedule
from effnet.train.recalibration import measure_batchnorm
from effnet.train.run import (
    Run,
    end_epoch,
    freeze_backbone,
    freeze_early_stages,
    inference_copy,
    make_loss,
)
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
    features. Deterministic: the eval-style transform, a seeded order and seeded positions.

    The statistics are means over images, so a seeded random sample of
    ``config.bn_recalibrate_images`` of them (all when there are fewer) estimates them to a
    fraction of a percent. They are measured through the fused model
    (:func:`effnet.train.recalibration.measure_batchnorm`), at about its inference speed.
    """
    c, model, ctx = run.config, run.model, run.ctx
    start = time.perf_counter()
    # A fixed shuffle so batches mix classes; every image weighs the same.
    loader = make_loader(
        run.data.train,
        train_transform(model.preprocess, "none"),
        ctx,
        batch_size=c.eval_batch_size,
        seed=c.seed,
        workers=c.workers,
        images=run.images,
        whole_epoch=True,
        progress=c.progress,
    )
    wanted = -(c.bn_recalibrate_images // -ctx.world_size)  # this rank's share

    def batches() -> Iterator[torch.Tensor]:
        seen = 0
        for images, _ in loader:
            if seen >= wanted:
                return
            images = images[: wanted - seen].to(ctx.device)
            seen += images.shape[0]
            yield images

    seen, how = measure_batchnorm(
        model, batches(), channels_last=c.channels_last, seed=c.seed + ctx.rank
    )
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if ctx.enabled:  # every rank saw its own shard: pool the statistics, weighted by images
        count = ctx.all_reduce_sum(
            torch.tensor([float(seen)], dtype=torch.float64, device=ctx.device)
        )
        for bn in bns:
            for stat in (bn.running_mean, bn.running_var):
                if stat is not None:
                    stat.copy_((ctx.all_reduce_sum(stat.double() * seen) / count).to(stat.dtype))
    model.eval()
    seconds = round(time.perf_counter() - start, 2)
    run.log(
        f"recalibrated {len(bns)} BatchNorm layers on {seen * ctx.world_size} of "
        f"{len(run.data.train)} training images ({how} pass, {seconds:.1f}s)"
    )
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
    timings: dict[str, float] = {"head_cached_features": float(cached)}
    start = time.perf_counter()
    epochs = range(state.done("head", c.head_epochs), c.head_epochs)
    val_features: tuple[torch.Tensor, torch.Tensor] | None = None

    def end(epoch: int, stats: EpochStats) -> bool:
        state.capture("head", epoch, setup, model)  # the whole model: resume starts from it
        row = {"phase": "head", "epoch": epoch + 1, "lr": c.head_lr}
        val = None if val_features is None else _head_scores(model, *val_features)
        end_epoch(run, state, row, stats, model, val=val)
        return False

    def plan(epoch: int) -> Epoch:
        seed = epoch_seed(c.seed, "head", epoch)
        transform = train_transform(model.preprocess, c.head_augment, vflip=c.vflip)
        loader = _train_loader(run, transform, seed)
        return Epoch(loader, loss_fn, seed, desc=f"head {epoch + 1}/{c.head_epochs}")

    if cached and len(epochs):
        # one pass over each split: the frozen backbone's features never change in phase 1
        features, labels = _head_features(run, run.data.train, "train")
        if run.data.val is not None:
            val_features = _head_features(run, run.data.val, "val")
        timings["features_seconds"] = round(time.perf_counter() - start, 2)
        for epoch in epochs:
            seed = epoch_seed(c.seed, "head", epoch)
            torch.manual_seed(seed)
            end(epoch, _head_epoch_cached(run, optimizer, loss_fn, features, labels, seed))
    else:
        fit(setup, epochs, plan, end)
    timings["head_seconds"] = round(time.perf_counter() - start, 2)
    return timings


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


def _head_features(run: Run, part: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen backbone's pooled features of every image of ``part``, in dataset order,
    through the fused inference copy: the view the uncached path would train on (the eval view
    at the training size), computed once."""
    c, start = run.config, time.perf_counter()
    loader = make_loader(
        part,
        train_transform(run.model.preprocess, "none"),
        run.ctx,
        batch_size=c.eval_batch_size,
        workers=c.workers,
        images=run.images,
        progress=c.progress,
    )
    features, labels = extract_features(
        inference_copy(run.model, c.channels_last),
        loader,
        run.ctx,
        amp_dtype=run.amp_dtype,
        channels_last=c.channels_last,
        progress=c.progress,
    )
    seconds = time.perf_counter() - start
    run.log(
        f"head: {len(labels)} {name} feature vectors in {seconds:.1f}s "
        f"({len(labels) / max(seconds, 1e-9):.0f} img/s)"
    )
    return features, labels


@torch.no_grad()
def _head_scores(model: EfficientNet, features: torch.Tensor, labels: torch.Tensor) -> EvalResult:
    """The head's validation result on cached features: what scoring the whole model gives."""
    start = time.perf_counter()
    logits = model.classifier(features.to(next(model.classifier.parameters()).device)).float()
    return EvalResult.of(logits.cpu(), labels, time.perf_counter() - start)


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
    how = dict(accum_steps=c.accum_steps, grad_clip=c.grad_clip, channels_last=c.channels_last,
               progress=c.progress, amp_dtype=run.amp_dtype)  # fmt: skip
    setup = TrainSetup(train_model, optimizer, ctx, scheduler=scheduler, scaler=scaler, ema=ema,
                       ema_source=model, frozen_modules=frozen, **how)  # fmt: skip
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

    seconds: list[tuple[int, float]] = []  # (epoch, seconds) of the epochs of this process

    def end(epoch: int, stats: EpochStats) -> bool:
        assert setup.scheduler is not None
        seconds.append((epoch, stats.seconds))
        adapted = _fit_budget(run, state, setup, epoch, seconds)
        state.capture("full", epoch, setup, model)
        # the peak rate: with --layer-decay the groups run from the stem's rate up to this
        row = {"phase": "full", "epoch": epoch + 1, "lr": max(setup.scheduler.get_last_lr())}
        if schedule is not None:
            row["size"] = epoch_knobs(c, schedule, epoch).size
        end_epoch(run, state, row, stats, setup.ema.module if setup.ema else model)
        if adapted and run.ctx.is_main:  # after the checkpoint that holds the new length
            save_config(c, run.run_dir / "config.yaml")
        stop = (
            bool(c.early_stop) and run.data.val is not None and state.stale_epochs >= c.early_stop
        )
        if stop:
            run.log(
                f"early stop: no val improvement for {state.stale_epochs} epochs "
                f"(best: {state.best_epoch})"
            )
        return stop

    def epochs() -> Iterator[int]:  # read as it goes: the time budget may change the length
        epoch = first
        while epoch < c.epochs:
            yield epoch
            epoch += 1

    start = time.perf_counter()
    fit(setup, epochs(), plan, end)
    if setup.ema is not None:
        model.load_state_dict(setup.ema.module.state_dict())
    return {"full_seconds": round(time.perf_counter() - start, 2)}


def _fit_budget(
    run: Run, state: RunState, setup: TrainSetup, epoch: int, seconds: list[tuple[int, float]]
) -> bool:
    """After each phase-2 epoch of a run with a time budget: after the first, the epochs that
    fit what is left of it at the speed just measured (:func:`effnet.train.plan.adapted_epochs`);
    after a later one, fewer when the last three epochs ran slower than that
    (:func:`effnet.train.plan.trimmed_epochs`). A new length rebuilds the learning-rate schedule
    over it (the first epoch was the warmup, which does not depend on the length) and is kept
    in ``state``. Returns whether it changed."""
    c, plan = run.config, run.plan
    if plan is None or plan.budget_seconds is None:
        return False
    elapsed = time.perf_counter() - run.started
    if epoch == 0:
        epochs = adapted_epochs(plan, c, elapsed, seconds[-1][1])
        why = f"the first epoch took {seconds[-1][1]:.0f}s"
    else:
        epochs = trimmed_epochs(plan, c, elapsed, epoch + 1, seconds[-3:])
        why = f"epochs now take {sum(s for _, s in seconds[-3:]) / len(seconds[-3:]):.0f}s"
    if epochs == c.epochs:
        return False
    run.log(
        f"time budget: {why} after {elapsed:.0f}s in all; {epochs} epochs fit what is left of "
        f"{plan.budget_seconds:.0f}s (planned {c.epochs})"
    )
    c.epochs = state.full_epochs = epochs
    assert setup.scheduler is not None
    per_epoch = optimizer_steps(_train_loader(run, None, 0), c.accum_steps)
    fresh = build_scheduler(setup.optimizer, c, per_epoch)
    setup.scheduler.lr_lambdas = fresh.lr_lambdas
    return True
