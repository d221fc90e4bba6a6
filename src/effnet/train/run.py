"""What the phases of one fine-tuning or training run share, and their per-epoch bookkeeping:
building the model, the loss and the loaders, validating, logging, checkpointing."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from effnet.data import DecodedImages, SourceSplits, class_weights, eval_transform
from effnet.errors import ConfigError
from effnet.factory import create_model
from effnet.model import EfficientNet
from effnet.train.checkpoint import RunState, save_checkpoint
from effnet.train.config import FinetuneConfig
from effnet.train.distributed import DistContext
from effnet.train.loaders import make_loader
from effnet.train.loop import EpochStats, EvalResult, evaluate
from effnet.train.metrics import classification_report
from effnet.train.plan import Plan
from effnet.train.trackers import Trackers

__all__ = [
    "SELECT_BY",
    "Run",
    "build_model",
    "end_epoch",
    "inference_copy",
    "score",
    "selection_score",
    "weights_source",
    "with_size",
]


log = logging.getLogger("effnet.train")


@dataclass(frozen=True)
class Run:
    """What every phase of a run reads; built once by :func:`~effnet.train.finetune`.

    The model is the one object the phases change (its weights train); where the run stands
    (phase, epoch, history, best) is the :class:`~effnet.train.checkpoint.RunState` the phases
    receive beside it.
    """

    config: FinetuneConfig
    ctx: DistContext
    run_dir: Path
    data: SourceSplits
    model: EfficientNet
    amp_dtype: torch.dtype | None
    images: DecodedImages | None
    """The pictures ``load_source`` decoded (``cache_images``), served to every loader."""
    writer: Trackers | None = None
    """The experiment trackers the epochs also go to (main process, ``--tensorboard``,
    ``--mlflow``), else None."""
    plan: Plan | None = None
    """What the run was planned to do (``plan.json``), when something was left to the plan."""
    started: float = 0.0
    """``time.perf_counter()`` when the run started (its time budget counts from there)."""

    def log(self, message: str) -> None:
        """Report progress on the ``effnet.train`` logger (the main process only)."""
        if self.ctx.is_main:
            log.info(message)


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
        raise ConfigError(f"crop_pct must be in (0, 1] (1.0 keeps the whole image), got {crop_pct}")
    resize = int(size / crop_pct + 1e-6)
    model.preprocess = dataclasses.replace(pre, input_size=size, crop_pct=crop_pct, resize=resize)


def weights_source(config: FinetuneConfig) -> bool | str:
    """``config.weights`` as ``create_model``'s ``pretrained``: default -> True, none -> False,
    a tag or a file as it is."""
    return {"default": True, "none": False}.get(config.weights, config.weights)


def build_model(config: FinetuneConfig, data: SourceSplits) -> EfficientNet:
    model = create_model(
        config.model,
        pretrained=weights_source(config),
        num_classes=data.num_classes,
        drop_rate=config.drop_rate,
        drop_path_rate=config.drop_path_rate,
    )
    assert isinstance(model, EfficientNet)
    model.class_names = list(data.classes)
    with_size(model, config.image_size, config.crop_pct)
    return model


def make_loss(
    config: FinetuneConfig, data: SourceSplits, device: torch.device, mixing: bool
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy with label smoothing and the config's class balancing: ``loss`` weights
    each class by its inverse frequency; ``logit`` adds the log of the class priors to the
    logits in training only (logit adjustment), so the model's own logits come out as if the
    classes were balanced, with the gradients of unweighted cross-entropy."""
    weights = None
    shift = None
    counts = data.train.class_counts
    if config.balance == "loss":
        weights = class_weights(counts).to(device)
    elif config.balance == "logit":
        prior = torch.tensor(counts, dtype=torch.float32).clamp_min(1)
        shift = (prior / prior.sum()).log().to(device)
    smoothing = 0.0 if mixing else config.label_smoothing  # mixup targets are smoothed already

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if shift is not None:
            logits = logits + shift
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
        raise ConfigError(f"freeze_stages must be in 0..{len(model.stages)}, got {stages}")
    if stages == 0:
        return ()
    frozen = (model.stem, *model.stages[:stages])
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return frozen


def inference_copy(model: nn.Module, channels_last: bool) -> nn.Module:
    """The fused copy every evaluation of a run runs on (BatchNorm folded into the convolutions):
    made fresh for each evaluation, so the training model is never touched."""
    from effnet.export.fold import optimize

    return optimize(model, channels_last=channels_last, check=False)


def score(run: Run, model: nn.Module, part: Any, *, tta: bool = False) -> EvalResult:
    """Evaluate ``model``'s inference copy on one split of the run's data."""
    c = run.config
    loader = make_loader(
        part,
        eval_transform(run.model),
        run.ctx,
        batch_size=c.eval_batch_size,
        workers=c.workers,
        images=run.images,
    )
    return evaluate(
        inference_copy(model, c.channels_last),
        loader,
        run.ctx,
        amp_dtype=run.amp_dtype,
        channels_last=c.channels_last,
        tta=tta,
        tta_vflip=tta and c.vflip,
    )


def end_epoch(
    run: Run,
    state: RunState,
    row: dict[str, Any],
    stats: EpochStats,
    eval_model: nn.Module,
    *,
    val: EvalResult | None = None,
) -> bool:
    """Validate, record, log, checkpoint an epoch that ``state`` has just captured. ``row``
    holds the phase, the epoch and what the epoch trained with; ``val``, the validation result
    when the phase computed it already (phase 1 on cached features). Returns True when the
    epoch becomes the kept one by ``config.select_by`` (:meth:`RunState.record`: the best
    score, or a later epoch within its standard error), marked ``*`` in the log."""
    row.update(
        train_loss=round(stats.loss, 5),
        train_acc=round(stats.acc, 5),
        images_per_s=round(stats.images_per_s, 2),
        seconds=round(stats.seconds, 2),
    )
    if run.data.val is not None:
        val = val if val is not None else score(run, eval_model, run.data.val)
        metrics = classification_report(val.targets, val.preds, run.data.classes)
        row.update(
            val_loss=round(val.loss, 5),
            val_acc=round(val.acc, 5),
            val_balanced_accuracy=round(metrics["balanced_accuracy"], 5),
            val_macro_f1=round(metrics["macro_f1"], 5),
            val_seconds=round(val.seconds, 2),
        )
        row["val_score_se"] = round(selection_margin(run.config.select_by, metrics), 5)
    _check_finite(run, row, stats)
    margin = row.get("val_score_se", 0.0)
    improved = state.record(row, selection_score(run.config.select_by, row), margin)
    if run.ctx.is_main:
        if run.writer is not None:
            run.writer.log_epoch(row, len(state.history))
        save_checkpoint(run.run_dir, state, eval_model, improved=improved)
    _log_epoch(run, row, stats, improved)
    return improved


SELECT_BY = ("accuracy", "balanced_accuracy", "macro_f1", "loss")
"""What the best epoch is chosen by, on the validation split."""


def selection_score(select_by: str, row: dict[str, Any]) -> float | None:
    """The epoch's validation score to maximise (the negative loss for ``loss``); None without
    a validation split."""
    key = {"accuracy": "val_acc", "loss": "val_loss"}.get(select_by, f"val_{select_by}")
    value = row.get(key)
    if value is None:
        return None
    return -float(value) if select_by == "loss" else float(value)


def selection_margin(select_by: str, metrics: dict[str, Any]) -> float:
    """The standard error of the validation score ``select_by`` (``metrics`` from
    ``classification_report``): how far two epochs' scores differ by chance on these images.
    Accuracy: sqrt(a (1 - a) / n). Balanced accuracy and macro-F1 (a mean over classes): the
    binomial error of each class's recall, sqrt(sum r (1 - r) / n_c) / classes. The loss: 0
    (per-image losses are not kept), so selecting by loss stays strict."""
    classes = [c for c in metrics["per_class"].values() if c["support"] > 0]
    if select_by == "loss" or not classes:
        return 0.0
    if select_by == "accuracy":
        n = sum(c["support"] for c in classes)
        a = metrics["accuracy"]
        return math.sqrt(max(a * (1 - a), 0.0) / n)
    var = sum(c["recall"] * (1 - c["recall"]) / c["support"] for c in classes)
    return math.sqrt(var) / len(classes)


def _check_finite(run: Run, row: dict[str, Any], stats: EpochStats) -> None:
    """A loss that is no longer a number ends the run before its checkpoint is saved: the last
    checkpoint stays the last good epoch, and the run does not go on to report NaN results."""
    losses = {"train": stats.loss, "val": row.get("val_loss", 0.0)}
    bad = [f"{name} loss {value}" for name, value in losses.items() if not math.isfinite(value)]
    if bad:
        lower = "--head-lr" if row["phase"] == "head" else "--lr (or set --grad-clip)"
        raise ConfigError(
            f"training diverged in {row['phase']} epoch {row['epoch']} ({', '.join(bad)} at "
            f"learning rate {row['lr']:.3g}); nothing of this epoch was saved. Lower {lower} "
            f"and start a new run (--overwrite, or another --out)"
        )


def _log_epoch(run: Run, row: dict[str, Any], stats: EpochStats, improved: bool) -> None:
    val = ""
    if "val_acc" in row:
        val = (
            f" | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} balanced "
            f"{row['val_balanced_accuracy']:.4f}"
        )
    total = run.config.head_epochs if row["phase"] == "head" else run.config.epochs
    run.log(
        f"{row['phase']:>4} {row['epoch']}/{total}  train loss {stats.loss:.4f} acc "
        f"{stats.acc:.4f}{val} | lr {row['lr']:.2e} | {stats.images_per_s:.1f} img/s | "
        f"{stats.seconds:.0f}s" + ("  *" if improved else "")
    )
