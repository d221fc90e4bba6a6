"""The state one fine-tuning or training run carries, and its per-epoch bookkeeping: building
the model, losses and loaders, validating, logging and checkpointing at the end of an epoch."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from effnet.data import SourceSplits, SplitFractions, class_weights, eval_transform
from effnet.factory import create_model
from effnet.model import EfficientNet
from effnet.train.checkpoint import save_training_state
from effnet.train.config import FinetuneConfig
from effnet.train.distributed import DistContext
from effnet.train.loaders import make_loader
from effnet.train.loop import EpochStats, evaluate
from effnet.weights.native import save_model

__all__ = ["Run"]


@dataclass
class Run:
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


def fractions_of(split: str) -> SplitFractions:
    return SplitFractions.parse(split)


def with_size(model: EfficientNet, size: int | None, crop_pct: float | None = None) -> None:
    """Train and evaluate at ``size``; keep the weights' resize/crop ratio unless ``crop_pct``
    says how much of the image the center crop keeps (1.0: all of it, only resized)."""
    pre = model.preprocess
    size = pre.input_size if size is None else size
    if crop_pct is None:
        if size == pre.input_size:
            return
        resize = round(pre.resize_size * size / pre.input_size)
        model.preprocess = dataclasses.replace(pre, input_size=size, resize=resize)
        return
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1] (1.0 keeps the whole image), got {crop_pct}")
    resize = int(size / crop_pct + 1e-6)
    model.preprocess = dataclasses.replace(pre, input_size=size, crop_pct=crop_pct, resize=resize)


def build_model(config: FinetuneConfig, data: SourceSplits) -> EfficientNet:
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
    with_size(model, config.image_size, config.crop_pct)
    return model


def make_loss(config: FinetuneConfig, data: SourceSplits, device: torch.device, mixing: bool):
    weights = None
    if config.balance == "loss":
        weights = class_weights(data.train.class_counts).to(device)
    smoothing = 0.0 if mixing else config.label_smoothing  # mixup targets are smoothed already

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, weight=weights, label_smoothing=smoothing)

    return loss


def freeze_backbone(model: EfficientNet, frozen: bool) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(not frozen or name.startswith("classifier."))


def freeze_early_stages(model: EfficientNet, stages: int) -> tuple[nn.Module, ...]:
    """Keep the stem and the first ``stages`` stages fixed (weights and BatchNorm statistics).

    Early stages run at the highest resolutions, so their backward pass is the most expensive,
    and their generic edge/texture filters need the least adaptation: freezing them buys a
    large share of the training time back for little accuracy.
    """
    if not 0 <= stages <= len(model.stages):
        raise ValueError(f"freeze_stages must be in 0..{len(model.stages)}, got {stages}")
    if stages == 0:
        return ()
    frozen = (model.stem, *model.stages[:stages])
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return frozen


# ----------------------------------------------------------------------------------------------
# checkpoints and epoch bookkeeping


def val_score(row: dict[str, Any]) -> float | None:
    return row.get("val_acc")


def end_epoch(
    run: Run,
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
            eval_loader(run, run.data.val),
            run.ctx,
            amp_dtype=run.amp_dtype,
            channels_last=run.config.channels_last,
        )
        row.update(val_loss=round(val.loss, 5), val_acc=round(val.acc, 5))
    run.history.append(row)
    score = val_score(row)
    improved = score is not None and score > run.best_score
    if improved:
        run.best_score, run.best_epoch = float(score), f"{phase} {epoch + 1}"
    if run.ctx.is_main:
        write_history(run)
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


def write_history(run: Run) -> None:
    lines = "".join(json.dumps(row) + "\n" for row in run.history)
    tmp = run.run_dir / ".metrics.jsonl.tmp"
    tmp.write_text(lines)
    tmp.replace(run.run_dir / "metrics.jsonl")


def eval_loader(run: Run, data: Any) -> Any:
    return make_loader(
        data,
        eval_transform(run.model),
        run.ctx,
        batch_size=run.config.eval_batch_size,
        train=False,
        workers=run.config.workers,
        loader=run.image_loader,
    )


def train_loader(run: Run, transform: Any, seed: int) -> Any:
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


def steps_per_epoch(run: Run) -> int:
    c = run.config
    per_rank = -(len(run.data.train) // -run.ctx.world_size)
    drop_last = len(run.data.train) > 2 * c.batch_size
    batches = per_rank // c.batch_size if drop_last else -(per_rank // -c.batch_size)
    return max(1, -(batches // -c.accum_steps))
