"""The phases of a run: BatchNorm recalibration, the head on a frozen backbone (on cached
features when possible), and training everything (with an optional progressive schedule)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from effnet.data import MixupCutmix, is_deterministic, train_transform
from effnet.layers import DropPath
from effnet.model import EfficientNet
from effnet.train.config import FinetuneConfig
from effnet.train.ema import ModelEma
from effnet.train.features import extract_features
from effnet.train.loaders import epoch_seed, make_loader
from effnet.train.loop import EpochStats, train_one_epoch
from effnet.train.optim import build_optimizer, lr_lambda
from effnet.train.progressive import ProgressiveSchedule
from effnet.train.run import (
    Run,
    end_epoch,
    freeze_backbone,
    freeze_early_stages,
    make_loss,
    steps_per_epoch,
    train_loader,
)
from effnet.train.syncbn import convert_sync_batchnorm

__all__ = ["phase_full", "phase_head", "recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(run: Run) -> None:
    """Re-estimate every BatchNorm's running statistics on the training images (AdaBN).

    Pretrained statistics describe ImageNet. The frozen backbone of phase 1 normalises the target
    data with them, but phase 2 trains with batch statistics of the target data: the head learnt
    in phase 1 then sees shifted features and the loss jumps when phase 2 starts. Measuring the
    statistics on the target data first (no weight changes) makes both phases see the same
    features. Deterministic: the eval-style transform and a seeded order.
    """
    c, model = run.config, run.model
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
        run.ctx,
        batch_size=c.eval_batch_size,
        train=True,
        seed=c.seed,
        workers=c.workers,
        loader=run.image_loader,
    )
    seen = 0
    for images, _ in loader:
        images = images.to(run.ctx.device)
        if c.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        seen += images.shape[0]
        for bn in bns:
            bn.momentum = images.shape[0] / seen
        model(images)
    if run.ctx.enabled:  # every rank saw its own shard: pool the statistics, weighted by images
        count = run.ctx.all_reduce_sum(
            torch.tensor([float(seen)], dtype=torch.float64, device=run.ctx.device)
        )
        for bn in bns:
            for stat in (bn.running_mean, bn.running_var):
                if stat is not None:
                    pooled = run.ctx.all_reduce_sum(stat.double() * seen) / count
                    stat.copy_(pooled.to(stat.dtype))
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.eval()
    run.timings["bn_recalibrate_seconds"] = round(time.perf_counter() - start, 2)
    run.log(
        f"recalibrated {len(bns)} BatchNorm layers on the training images "
        f"({run.timings['bn_recalibrate_seconds']:.1f}s)"
    )


def phase_head(run: Run, state: dict[str, Any], start_epoch: int) -> None:
    c, model, ctx = run.config, run.model, run.ctx
    freeze_backbone(model, frozen=True)
    optimizer = build_optimizer(model.named_parameters(), "adamw", c.head_lr, 1e-4)
    if state.get("phase") == "head" and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    loss_fn = make_loss(c, run.data, ctx.device, mixing=False)
    cached = c.cache_features and is_deterministic(c.head_augment) and not ctx.enabled
    start = time.perf_counter()
    features = labels = None
    if cached:
        # Same transform and order as the uncached path would use, computed once.
        order_loader = make_loader(
            run.data.train,
            train_transform(model.preprocess, "none"),
            ctx,
            batch_size=c.eval_batch_size,
            train=False,
            workers=c.workers,
            loader=run.image_loader,
        )
        features, labels = extract_features(
            model,
            order_loader,
            ctx,
            amp_dtype=run.amp_dtype,
            channels_last=c.channels_last,
            progress=c.progress,
        )
        run.log(f"head: cached {len(labels)} feature vectors in {time.perf_counter() - start:.1f}s")
    for epoch in range(start_epoch, c.head_epochs):
        seed = epoch_seed(c.seed, "head", epoch)
        torch.manual_seed(seed)
        if cached:
            assert features is not None and labels is not None
            stats = head_epoch_cached(run, optimizer, loss_fn, features, labels, seed)
        else:
            transform = train_transform(model.preprocess, c.head_augment, vflip=c.vflip)
            stats = train_one_epoch(
                model,
                train_loader(run, transform, seed),
                optimizer,
                loss_fn,
                ctx,
                amp_dtype=run.amp_dtype,
                channels_last=c.channels_last,
                progress=c.progress,
                desc=f"head {epoch + 1}/{c.head_epochs}",
                frozen_backbone=True,
            )
        state.update(phase="head", epoch=epoch + 1, optimizer=optimizer.state_dict())
        end_epoch(run, "head", epoch, stats, c.head_lr, model, state)
    run.timings["head_seconds"] = round(time.perf_counter() - start, 2)
    run.timings["head_cached_features"] = float(cached)


def head_epoch_cached(
    run: Run,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    features: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
) -> EpochStats:
    """One head epoch over cached features, batch for batch what the image loader would give."""
    c, model = run.config, run.model
    sampler = make_loader(
        run.data.train,
        None,
        run.ctx,
        batch_size=c.batch_size,
        train=True,
        seed=seed,
        balance=c.balance == "sampler",
        workers=0,
    ).sampler
    order = list(sampler)
    drop_last = len(run.data.train) > 2 * c.batch_size
    stop = len(order) - len(order) % c.batch_size if drop_last else len(order)
    start = time.perf_counter()
    model.dropout.train()
    total_loss = correct = seen = 0.0
    for i in range(0, stop, c.batch_size):
        idx = torch.tensor(order[i : i + c.batch_size])
        x, y = features[idx].to(run.ctx.device), labels[idx].to(run.ctx.device)
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


def phase_full(run: Run, state: dict[str, Any], start_epoch: int) -> None:
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
    optimizer = build_optimizer(
        model.named_parameters(), c.optimizer, c.lr, c.weight_decay, c.momentum
    )
    per_epoch = steps_per_epoch(run)
    total_steps = per_epoch * c.epochs
    warmup = round(c.warmup_epochs * per_epoch)
    factor = lr_lambda(
        total_steps,
        warmup,
        min_ratio=c.min_lr / c.lr,
        schedule=c.schedule,
        step_every=round(c.step_epochs * per_epoch),
        step_gamma=c.step_gamma,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    scaler = torch.amp.GradScaler("cuda") if run.amp_dtype == torch.float16 else None
    ema = ModelEma(model, c.ema) if c.ema > 0 else None
    if state.get("phase") == "full" and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
    if state.get("phase") == "full" and "raw_model" in state:
        model.load_state_dict(state["raw_model"])
    schedule = ProgressiveSchedule.parse(c.progressive) if c.progressive else None
    if schedule is not None and start_epoch == 0:
        run.log(
            "progressive learning: "
            + "; ".join(
                f"stage {v.stage + 1} epochs {v.epochs[0] + 1}-{v.epochs[1] + 1}: {v.size}px"
                + (f", randaug {v.magnitude}" if v.magnitude is not None else "")
                + (f", mixup {v.mixup:g}" if v.mixup is not None else "")
                + (f", cutmix {v.cutmix:g}" if v.cutmix is not None else "")
                + (f", dropout {v.dropout:g}" if v.dropout is not None else "")
                for v in schedule.table(c.epochs)
            )
        )
    stale = state.get("stale_epochs", 0)
    start = time.perf_counter()
    for epoch in range(start_epoch, c.epochs):
        seed = epoch_seed(c.seed, "full", epoch)
        torch.manual_seed(seed + 7_919 * ctx.rank)  # dropout/drop-path/mixup differ per rank
        knobs = epoch_knobs(c, schedule, epoch, model)
        mixing = knobs["mixup"] > 0 or knobs["cutmix"] > 0
        loss_fn = make_loss(c, run.data, ctx.device, mixing)
        mix = (
            MixupCutmix(
                run.data.num_classes,
                knobs["mixup"],
                knobs["cutmix"],
                label_smoothing=c.label_smoothing,
                seed=seed,
            )
            if mixing
            else None
        )
        transform = train_transform(
            model.preprocess,
            c.augment,
            magnitude=knobs["magnitude"],
            vflip=c.vflip,
            size=knobs["size"],
        )
        run.epoch_extra = {"size": knobs["size"]} if schedule is not None else {}
        stats = train_one_epoch(
            train_model,
            train_loader(run, transform, seed),
            optimizer,
            loss_fn,
            ctx,
            scheduler=scheduler,
            scaler=scaler,
            amp_dtype=run.amp_dtype,
            ema=ema,
            ema_model=model,
            mix=mix,
            accum_steps=c.accum_steps,
            grad_clip=c.grad_clip,
            channels_last=c.channels_last,
            progress=c.progress,
            desc=f"full {epoch + 1}/{c.epochs}",
            on_step=run.on_step,
            frozen_modules=frozen,
        )
        eval_model = ema.module if ema is not None else model
        state.update(
            phase="full",
            epoch=epoch + 1,
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            scaler=scaler.state_dict() if scaler else None,
            ema=ema.state_dict() if ema else None,
            raw_model=model.state_dict(),
        )
        improved = end_epoch(
            run, "full", epoch, stats, scheduler.get_last_lr()[0], eval_model, state
        )
        stale = 0 if improved else stale + 1
        state["stale_epochs"] = stale
        if c.early_stop and run.data.val is not None and stale >= c.early_stop:
            run.log(f"early stop: no val improvement for {stale} epochs (best: {run.best_epoch})")
            break
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    run.timings["full_seconds"] = round(time.perf_counter() - start, 2)


def epoch_knobs(
    c: FinetuneConfig, schedule: ProgressiveSchedule | None, epoch: int, model: EfficientNet
) -> dict[str, Any]:
    """Image size, RandAugment magnitude, mixup/cutmix alpha and dropout for this epoch: the
    config's values, or the progressive schedule's stage values where it sets them."""
    knobs: dict[str, Any] = {
        "size": None,
        "magnitude": c.magnitude,
        "mixup": c.mixup,
        "cutmix": c.cutmix,
    }
    if schedule is not None:
        v = schedule.at_epoch(epoch, c.epochs)
        knobs["size"] = v.size
        if v.magnitude is not None:
            if c.augment not in ("medium", "heavy"):
                raise ValueError(
                    f"the progressive schedule sets RandAugment magnitudes, but augment is "
                    f"{c.augment!r}; use --augment medium or heavy (they include RandAugment)"
                )
            knobs["magnitude"] = v.magnitude
        for key in ("mixup", "cutmix"):
            if getattr(v, key) is not None:
                knobs[key] = getattr(v, key)
        if v.dropout is not None:
            model.dropout.p = v.dropout
    return knobs
