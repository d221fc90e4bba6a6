"""The two-phase transfer-learning workflow (seed, section 6.1) as one function.

1. Load pretrained weights; replace the head with one sized for the data.
2. Phase 1 ("head"): freeze the backbone (BatchNorm statistics too) and train the head at ~1e-3.
   Without random augmentation the frozen backbone's features never change, so they are
   computed once and the head trains on them in seconds.
3. Phase 2 ("full"): unfreeze everything; AdamW at ~1e-4 with warmup and cosine decay.
4. Evaluate the best checkpoint on the held-out test split; write report, curves and plots.

Every epoch ends with an atomic checkpoint; ``resume=True`` continues a killed run and, because
every epoch reseeds from (seed, phase, epoch), finishes with the same result as an uninterrupted
run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from effnet.data import (
    MixupCutmix,
    SourceSplits,
    SplitFractions,
    class_weights,
    eval_transform,
    is_deterministic,
    load_source,
    train_transform,
)
from effnet.factory import create_model
from effnet.layers import DropPath
from effnet.model import EfficientNet
from effnet.train.checkpoint import load_training_state, save_training_state
from effnet.train.config import FinetuneConfig, load_config, save_config
from effnet.train.distributed import DistContext, init_distributed
from effnet.train.ema import ModelEma
from effnet.train.features import extract_features
from effnet.train.loaders import CachedImages, epoch_seed, make_loader, num_workers
from effnet.train.loop import EpochStats, evaluate, resolve_amp, train_one_epoch
from effnet.train.metrics import classification_report
from effnet.train.optim import build_optimizer, lr_lambda
from effnet.train.progressive import ProgressiveSchedule
from effnet.train.syncbn import convert_sync_batchnorm
from effnet.weights.native import save_model

__all__ = ["FinetuneResult", "finetune", "train"]


@dataclass
class FinetuneResult:
    run_dir: Path
    report: dict[str, Any]
    history: list[dict[str, Any]]
    timings: dict[str, float]
    best_checkpoint: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float | None:
        return self.report.get("test", {}).get("accuracy")


@dataclass
class _Run:
    """What the phases share; built once by :func:`finetune`."""

    config: FinetuneConfig
    ctx: DistContext
    run_dir: Path
    data: SourceSplits
    model: EfficientNet
    amp_dtype: torch.dtype | None
    image_loader: Callable[[Any], Any] | None
    on_step: Callable[[], None] | None = None
    epoch_extra: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    best_score: float = -math.inf
    best_epoch: str = ""
    writer: Any = None

    def log(self, message: str) -> None:
        if self.ctx.is_main:
            print(message, flush=True)


def _fractions(split: str) -> SplitFractions:
    return SplitFractions.parse(split)


def _with_size(model: EfficientNet, size: int | None) -> None:
    """Train and evaluate at ``size`` while keeping the weights' resize/crop ratio."""
    if size is None or size == model.preprocess.input_size:
        return
    pre = model.preprocess
    resize = round(pre.resize_size * size / pre.input_size)
    model.preprocess = dataclasses.replace(pre, input_size=size, resize=resize)


def _build_model(config: FinetuneConfig, data: SourceSplits) -> EfficientNet:
    pretrained: bool | str = {"default": True, "none": False}.get(config.weights, config.weights)
    model = create_model(
        config.model,
        pretrained=pretrained,
        num_classes=data.num_classes,
        drop_rate=config.drop_rate,
        drop_path_rate=config.drop_path_rate,
    )
    assert isinstance(model, EfficientNet)
    model.class_names = list(data.classes)
    _with_size(model, config.image_size)
    return model


def _loss_fn(config: FinetuneConfig, data: SourceSplits, device: torch.device, mixing: bool):
    weights = None
    if config.balance == "loss":
        weights = class_weights(data.train.class_counts).to(device)
    smoothing = 0.0 if mixing else config.label_smoothing  # mixup targets are smoothed already

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, weight=weights, label_smoothing=smoothing)

    return loss


def _freeze_backbone(model: EfficientNet, frozen: bool) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(not frozen or name.startswith("classifier."))


# ----------------------------------------------------------------------------------------------
# checkpoints and epoch bookkeeping


def _score(row: dict[str, Any]) -> float | None:
    return row.get("val_acc")


def _end_epoch(
    run: _Run,
    phase: str,
    epoch: int,
    stats: EpochStats,
    lr: float,
    eval_model: nn.Module,
    state: dict[str, Any],
) -> bool:
    """Validate, log, checkpoint. Returns True when this epoch is the best so far."""
    row: dict[str, Any] = {
        "phase": phase,
        "epoch": epoch + 1,
        "train_loss": round(stats.loss, 5),
        "train_acc": round(stats.acc, 5),
        "lr": lr,
        "images_per_s": round(stats.images_per_s, 2),
        "seconds": round(stats.seconds, 2),
        **run.epoch_extra,
    }
    if run.data.val is not None:
        val = evaluate(
            eval_model,
            _eval_loader(run, run.data.val),
            run.ctx,
            amp_dtype=run.amp_dtype,
            channels_last=run.config.channels_last,
        )
        row.update(val_loss=round(val.loss, 5), val_acc=round(val.acc, 5))
    run.history.append(row)
    score = _score(row)
    improved = score is not None and score > run.best_score
    if improved:
        run.best_score, run.best_epoch = float(score), f"{phase} {epoch + 1}"
    if run.ctx.is_main:
        _write_history(run)
        if run.writer is not None:
            step = len(run.history)
            for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"):
                if row.get(key) is not None:
                    run.writer.add_scalar(key, row[key], step)
        save_model(eval_model, run.run_dir / "last", extra={"epoch": row})
        if improved:
            save_model(eval_model, run.run_dir / "best", extra={"epoch": row})
        state.update(history=run.history, best_score=run.best_score, best_epoch=run.best_epoch)
        save_training_state(run.run_dir, state)
    val_text = (
        f" | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}" if "val_acc" in row else ""
    )
    total = run.config.head_epochs if phase == "head" else run.config.epochs
    run.log(
        f"{phase:>4} {epoch + 1}/{total}  train loss {stats.loss:.4f} acc {stats.acc:.4f}"
        f"{val_text} | lr {lr:.2e} | {stats.images_per_s:.1f} img/s | {stats.seconds:.0f}s"
        + ("  *" if improved else "")
    )
    return improved


def _write_history(run: _Run) -> None:
    lines = "".join(json.dumps(row) + "\n" for row in run.history)
    tmp = run.run_dir / ".metrics.jsonl.tmp"
    tmp.write_text(lines)
    tmp.replace(run.run_dir / "metrics.jsonl")


def _eval_loader(run: _Run, data: Any) -> Any:
    return make_loader(
        data,
        eval_transform(run.model),
        run.ctx,
        batch_size=run.config.eval_batch_size,
        train=False,
        workers=run.config.workers,
        loader=run.image_loader,
    )


def _train_loader(run: _Run, transform: Any, seed: int) -> Any:
    c = run.config
    return make_loader(
        run.data.train,
        transform,
        run.ctx,
        batch_size=c.batch_size,
        train=True,
        seed=seed,
        workers=c.workers,
        balance=c.balance == "sampler",
        loader=run.image_loader,
        drop_last=len(run.data.train) > 2 * c.batch_size,
    )


# ----------------------------------------------------------------------------------------------
# phase 1: the head


@torch.no_grad()
def _recalibrate_bn(run: _Run) -> None:
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
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.eval()
    run.timings["bn_recalibrate_seconds"] = round(time.perf_counter() - start, 2)
    run.log(
        f"recalibrated {len(bns)} BatchNorm layers on the training images "
        f"({run.timings['bn_recalibrate_seconds']:.1f}s)"
    )


def _phase_head(run: _Run, state: dict[str, Any], start_epoch: int) -> None:
    c, model, ctx = run.config, run.model, run.ctx
    _freeze_backbone(model, frozen=True)
    optimizer = build_optimizer(model.named_parameters(), "adamw", c.head_lr, 1e-4)
    if state.get("phase") == "head" and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    loss_fn = _loss_fn(c, run.data, ctx.device, mixing=False)
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
            stats = _head_epoch_cached(run, optimizer, loss_fn, features, labels, seed)
        else:
            transform = train_transform(model.preprocess, c.head_augment, vflip=c.vflip)
            stats = train_one_epoch(
                model,
                _train_loader(run, transform, seed),
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
        _end_epoch(run, "head", epoch, stats, c.head_lr, model, state)
    run.timings["head_seconds"] = round(time.perf_counter() - start, 2)
    run.timings["head_cached_features"] = float(cached)


def _head_epoch_cached(
    run: _Run,
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


def _phase_full(run: _Run, state: dict[str, Any], start_epoch: int) -> None:
    c, model, ctx = run.config, run.model, run.ctx
    _freeze_backbone(model, frozen=False)
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
    steps_per_epoch = _steps_per_epoch(run)
    total_steps = steps_per_epoch * c.epochs
    warmup = round(c.warmup_epochs * steps_per_epoch)
    factor = lr_lambda(
        total_steps,
        warmup,
        min_ratio=c.min_lr / c.lr,
        schedule=c.schedule,
        step_every=round(c.step_epochs * steps_per_epoch),
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
        knobs = _epoch_knobs(c, schedule, epoch, model)
        mixing = knobs["mixup"] > 0 or knobs["cutmix"] > 0
        loss_fn = _loss_fn(c, run.data, ctx.device, mixing)
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
            _train_loader(run, transform, seed),
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
        improved = _end_epoch(
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


def _epoch_knobs(
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


def _steps_per_epoch(run: _Run) -> int:
    c = run.config
    per_rank = -(len(run.data.train) // -run.ctx.world_size)
    drop_last = len(run.data.train) > 2 * c.batch_size
    batches = per_rank // c.batch_size if drop_last else -(per_rank // -c.batch_size)
    return max(1, -(batches // -c.accum_steps))


# ----------------------------------------------------------------------------------------------
# the whole run


def _prepare_run(config: FinetuneConfig, resume: bool) -> tuple[_Run, dict[str, Any]]:
    ctx = init_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = config.run_dir
    state: dict[str, Any] = {}
    if resume:
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(
                f"--resume: {run_dir} has no config.yaml; is it a run directory?"
            )
        config = load_config(saved)
        state = load_training_state(run_dir)
    elif (run_dir / "last.train.pt").exists() and ctx.is_main:
        raise FileExistsError(
            f"{run_dir} already holds a run; continue it with --resume, or choose another --out"
        )
    torch.manual_seed(config.seed)
    data = load_source(
        config.data,
        label_mode=config.label_mode,
        fractions=_fractions(config.split),
        seed=config.seed,
    )
    model = _build_model(config, data)
    if state:
        from effnet.weights.io import read_state_dict

        weights, _ = read_state_dict(run_dir / "last.safetensors")
        model.load_state_dict(weights)
    model.to(ctx.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    loader = CachedImages() if config.cache_images else None
    if loader is not None and num_workers(config.workers) > 0:
        parts = (data.train, data.val, data.test)
        loader.prefill([p for part in parts if part for p, _ in part.samples], config.progress)
    run = _Run(config, ctx, run_dir, data, model, resolve_amp(config.amp, ctx.device), loader)
    run.history = list(state.get("history", []))
    run.best_score = float(state.get("best_score", -math.inf))
    run.best_epoch = str(state.get("best_epoch", ""))
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        (run_dir / "data.json").write_text(json.dumps(data.to_dict(), indent=1) + "\n")
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            run.writer = SummaryWriter(str(run_dir / "tensorboard"))
    return run, state


def finetune(
    config: FinetuneConfig,
    resume: bool = False,
    on_step: Callable[[], None] | None = None,
) -> FinetuneResult:
    """Run (or, with ``resume``, continue) the two-phase fine-tuning described by ``config``.

    ``on_step`` is called after every optimizer step of phase 2 (progress hooks, tests).
    """
    wall = time.perf_counter()
    run, state = _prepare_run(config, resume)
    run.on_step = on_step
    c = run.config
    d = run.data
    run.log(
        f"effnet finetune: {c.model} ({c.weights} weights) on {c.data}: {d.num_classes} classes, "
        f"train {len(d.train)}, val {len(d.val) if d.val else 0}, test "
        f"{len(d.test) if d.test else 0}, {d.num_skipped} unreadable skipped; "
        f"{run.model.preprocess.input_size}px; run dir {run.run_dir}"
    )
    phase, done = state.get("phase"), int(state.get("epoch", 0))
    if c.bn_recalibrate and not state:
        _recalibrate_bn(run)
    if c.head_epochs and not (phase == "full" or (phase == "head" and done >= c.head_epochs)):
        _phase_head(run, state, done if phase == "head" else 0)
    if c.epochs:
        _phase_full(run, state, done if phase == "full" else 0)
    result = _finish(run)
    result.timings["wall_seconds"] = round(time.perf_counter() - wall, 2)
    if run.ctx.is_main:
        _write_json(run.run_dir / "report.json", {**result.report, "timings": result.timings})
    return result


def _finish(run: _Run) -> FinetuneResult:
    """Reload the best weights (by validation accuracy; the last ones without a val split),
    evaluate on the test split, write the report and the plots."""
    c, ctx = run.config, run.ctx
    best = run.run_dir / "best.safetensors"
    if run.data.val is not None and best.is_file():
        from effnet.weights.io import read_state_dict

        weights, _ = read_state_dict(best)
        run.model.load_state_dict(weights)
    report: dict[str, Any] = {
        "model": c.model,
        "weights": c.weights,
        "data": run.data.to_dict() | {"split": None},
        "num_skipped_images": run.data.num_skipped,
        "best_epoch": run.best_epoch or "last",
        "image_size": run.model.preprocess.input_size,
    }
    files: dict[str, str] = {}
    if run.data.test is not None:
        test = evaluate(
            run.model,
            _eval_loader(run, run.data.test),
            ctx,
            amp_dtype=run.amp_dtype,
            channels_last=c.channels_last,
            tta=c.tta,
        )
        report["test"] = classification_report(test.targets, test.preds, run.data.classes)
        report["test"]["loss"] = test.loss
        run.log(
            f"test: accuracy {report['test']['accuracy']:.4f}, balanced "
            f"{report['test']['balanced_accuracy']:.4f}, macro-F1 {report['test']['macro_f1']:.4f}"
            f" on {report['test']['num_samples']} images"
        )
    timings = dict(run.timings)
    epochs = [r for r in run.history if r.get("images_per_s")]
    if epochs:
        timings["full_images_per_s"] = round(
            sum(r["images_per_s"] for r in epochs if r["phase"] == "full")
            / max(1, sum(1 for r in epochs if r["phase"] == "full")),
            2,
        )
    if ctx.is_main:
        files = _plots(run, report)
        if run.writer is not None:
            run.writer.close()
    best_file = best if best.is_file() else run.run_dir / "last.safetensors"
    return FinetuneResult(run.run_dir, report, run.history, timings, best_file, files)


def _plots(run: _Run, report: dict[str, Any]) -> dict[str, str]:
    files = {
        "report": str(run.run_dir / "report.json"),
        "metrics": str(run.run_dir / "metrics.jsonl"),
    }
    try:
        from effnet.train.plots import plot_confusion, plot_curves

        if run.history:
            files["curves"] = str(plot_curves(run.history, run.run_dir / "curves.png"))
        if "test" in report:
            files["confusion"] = str(
                plot_confusion(
                    report["test"]["confusion_matrix"],
                    run.data.classes,
                    run.run_dir / "confusion.png",
                )
            )
    except ImportError as exc:
        run.log(f"(no plots: {exc})")
    return files


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def train(
    config: FinetuneConfig,
    resume: bool = False,
    on_step: Callable[[], None] | None = None,
) -> FinetuneResult:
    """Train from scratch: one phase, the same loop, checkpoints and reports as fine-tuning.

    Pass a :class:`~effnet.train.config.TrainConfig` (random init, SGD, longer schedule); under
    ``torchrun`` every process runs this and they form one job.
    """
    return finetune(config, resume=resume, on_step=on_step)
