"""One trial of a scaling experiment: build a model from a spec, train it under a fixed short
recipe, evaluate it, time it. Nothing else.

:func:`run_trial` takes and returns plain JSON-able dicts, so the same function runs in this
process, in a spawned worker of a process pool, or as a Ray task on another machine: everything
it needs (spec, data source, recipe, seed) travels in the config, and it loads the data itself.
Every model starts from random initialisation (the models differ, so no checkpoint fits them
all), trains through the library's one loop (:func:`effnet.train.loop.fit`), and every number
in the result is measured on the model that was trained.
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from effnet.cost import profile
from effnet.data import (
    PRESETS,
    DecodedImages,
    LabelledSet,
    SourceSplits,
    SplitFractions,
    eval_transform,
    load_source,
    split_record,
    stratified_split,
    train_transform,
)
from effnet.errors import BadDataError, ConfigError
from effnet.host import torch_threads
from effnet.model import EfficientNet
from effnet.specs import PreprocessConfig, spec_from_dict
from effnet.train.config import setting
from effnet.train.distributed import DistContext
from effnet.train.loaders import epoch_seed, make_loader, optimizer_steps
from effnet.train.loop import Epoch, TrainSetup, evaluate, fit
from effnet.train.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_scheduler

__all__ = ["DataConfig", "Recipe", "failed_result", "load_lab_data", "run_trial"]


@dataclass(frozen=True)
class DataConfig:
    """Where a trial's images come from and how they are split (the same in every trial)."""

    source: str = setting(
        "elpv", "class folder, split folders, CSV of path,label, or 'elpv'", flag="data"
    )
    label_mode: str | None = setting(None, "elpv only: 4class | binary (default 4class)")
    split: str = setting("70/15/15", "train/val/test fractions when the source is one set")
    split_seed: int = setting(0, "seed of the split: fixed across trials, only training varies")
    subsample: float = setting(1.0, "keep this stratified fraction of every split, for speed")

    def __post_init__(self) -> None:
        if not 0.0 < self.subsample <= 1.0:
            raise ConfigError(f"subsample must be in (0, 1], got {self.subsample}")
        SplitFractions.parse(self.split)  # fail in the parent, not in every worker

    def resolved(self) -> DataConfig:
        """The same config with a local source made absolute: pool workers and Ray tasks may
        start in another working directory."""
        path = Path(self.source).expanduser()
        if self.source.lower() == "elpv" or not path.exists():
            return self
        return dataclasses.replace(self, source=str(path.resolve()))


@dataclass(frozen=True)
class Recipe:
    """The one short training recipe every trial of an experiment shares.

    Its fields are :class:`~effnet.train.FinetuneConfig`'s, with defaults for small models
    trained from scratch for a few epochs: AdamW with warmup and cosine decay, light
    augmentation, mild dropout and no stochastic depth (too few steps for it to pay off),
    BatchNorm momentum 0.1 so running statistics catch up within a few hundred steps (the TF
    default 0.01 lags behind the weights in a run this short).
    """

    epochs: int = setting(5, "epochs per trial")
    batch_size: int = setting(32, "training batch size")
    eval_batch_size: int = setting(128, "evaluation batch size")
    optimizer: str = setting("adamw", " | ".join(OPTIMIZERS))
    lr: float = setting(2e-3, "peak learning rate")
    momentum: float = setting(0.9, "sgd / rmsprop momentum")
    weight_decay: float = setting(0.05, "weight decay on conv/linear weights")
    schedule: str = setting("cosine", "cosine | step | constant, after the warmup")
    step_epochs: float = setting(2.4, "step schedule: decay interval in epochs")
    step_gamma: float = setting(0.97, "step schedule: decay factor")
    warmup_epochs: float = setting(1.0, "linear warmup, in epochs")
    min_lr: float = setting(0.0, "the learning rate cosine decay ends at")
    label_smoothing: float = setting(0.1, "label smoothing of the cross-entropy")
    augment: str = setting("light", "flip (no crops) | none | light | medium | heavy")
    vflip: bool = setting(False, "also flip vertically (top/bottom-symmetric data)")
    drop_rate: float = setting(0.1, "dropout before the classifier, the same for every model")
    drop_path_rate: float = setting(0.0, "stochastic-depth rate, the same for every model")
    bn_momentum: float = setting(0.1, "BatchNorm momentum (0.1 suits short runs)")
    crop_pct: float = setting(1.0, "eval crop fraction (1.0 = resize to the input size)")
    latency_runs: int = setting(20, "timed batch-1 forward passes per trial (0 = skip)")

    def __post_init__(self) -> None:
        checks = [
            (
                self.epochs >= 1 and self.batch_size >= 2 and self.eval_batch_size >= 1,
                "need epochs >= 1, batch_size >= 2 (BatchNorm) and eval_batch_size >= 1",
            ),
            (
                self.lr > 0 and self.weight_decay >= 0 and self.warmup_epochs >= 0,
                "need lr > 0, weight_decay >= 0 and warmup_epochs >= 0",
            ),
            (self.latency_runs >= 0, "latency_runs must be >= 0"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.augment in PRESETS, f"augment must be one of {', '.join(PRESETS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{message}; got {self}")


def _subsample(part: LabelledSet | None, fraction: float, seed: int) -> LabelledSet | None:
    """A stratified ``fraction`` of ``part`` (the split code's per-class rounding)."""
    if part is None or fraction >= 1.0 or len(part) == 0:
        return part
    drop = 1.0 - fraction
    kept = stratified_split(part, SplitFractions(val=drop, test=0.0), seed=seed)["train"]
    if len(kept) == 0:
        raise BadDataError(
            f"subsample {fraction} keeps no images of a split of {len(part)}; raise --subsample"
        )
    return kept


def load_lab_data(config: DataConfig, images: DecodedImages | None = None) -> SourceSplits:
    """The source split as ``config`` says, subsampled; identical in every trial. Its record
    lists the files each split kept (the experiment's ``data.json``). ``images`` keeps the
    pictures the up-front check decoded, for the trial's loaders."""
    splits = load_source(
        config.source,
        label_mode=config.label_mode,
        fractions=SplitFractions.parse(config.split),
        seed=config.split_seed,
        keep_images=images or False,
        progress=False,
    )
    if splits.val is None:
        raise ConfigError(
            f"{config.source}: the lab ranks models on a validation split and found none; use a "
            f"split with a val part such as '70/15/15' (got {config.split!r})"
        )
    if config.subsample >= 1.0:
        return splits
    parts = {
        name: _subsample(getattr(splits, name), config.subsample, config.split_seed)
        for name in ("train", "val", "test")
    }
    kept = split_record(parts, mode=splits.record["mode"], source=splits.source)["splits"]
    record = {**splits.record, "splits": kept, "subsample": config.subsample}
    return dataclasses.replace(splits, **parts, record=record)


def _latency_ms(model: torch.nn.Module, resolution: int, runs: int) -> float | None:
    """Median wall time of a batch-1 forward pass, after warm-up."""
    if runs <= 0:
        return None
    model.eval()
    x = torch.randn(1, 3, resolution, resolution)
    times = []
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _train(
    model: EfficientNet,
    recipe: Recipe,
    data: SourceSplits,
    pre: PreprocessConfig,
    images: DecodedImages,
    seed: int,
) -> list[dict[str, Any]]:
    """Train ``model`` under ``recipe`` with the library's loop; the per-epoch history."""
    ctx = DistContext()
    transform = train_transform(pre, recipe.augment, vflip=recipe.vflip)

    def loader(epoch: int) -> Any:  # workers=0: a trial is already one of several workers
        seed_e = epoch_seed(seed, "lab", epoch)
        return make_loader(
            data.train,
            transform,
            ctx,
            batch_size=recipe.batch_size,
            seed=seed_e,
            workers=0,
            images=images,
        )

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=recipe.label_smoothing)

    optimizer = build_optimizer(
        model.named_parameters(), recipe.optimizer, recipe.lr, recipe.weight_decay, recipe.momentum
    )
    scheduler = build_scheduler(optimizer, recipe, optimizer_steps(loader(0)))
    setup = TrainSetup(model, optimizer, ctx, scheduler=scheduler)
    stats = fit(
        setup, range(recipe.epochs), lambda e: Epoch(loader(e), loss_fn, epoch_seed(seed, "lab", e))
    )
    return [
        {
            "epoch": epoch + 1,
            "train_loss": round(s.loss, 5),
            "train_acc": round(s.acc, 5),
            "images_per_s": round(s.images_per_s, 1),
        }
        for epoch, s in enumerate(stats)
    ]


def _score(
    model: EfficientNet,
    part: LabelledSet | None,
    pre: PreprocessConfig,
    images: DecodedImages,
    batch_size: int,
) -> tuple[float | None, float | None]:
    if part is None or len(part) == 0:
        return None, None
    tf = eval_transform(pre)
    loader = make_loader(part, tf, DistContext(), batch_size=batch_size, workers=0, images=images)
    result = evaluate(model, loader, DistContext())
    return round(result.acc, 5), round(result.loss, 5)


def run_trial(config: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """Train and evaluate the model ``config["spec"]`` describes; return the measured result.

    ``config`` holds ``id``, ``spec`` (:func:`effnet.specs.spec_to_dict`), ``data``
    (:class:`DataConfig` fields), ``recipe`` (:class:`Recipe` fields) and ``seed``; any other
    keys (strategy, target, coefficients) are copied into the result. ``threads`` > 0 runs the
    trial with that many torch intra-op threads (a pool gives each worker its share of the
    cores); the caller's setting is restored afterwards.
    """
    wall = time.perf_counter()
    with torch_threads(threads):
        recipe = Recipe(**config["recipe"])
        # The recipe, not the spec, owns regularisation: every model of an experiment gets the same.
        spec = spec_from_dict(config["spec"]).replace(
            dropout=recipe.drop_rate, bn_momentum=recipe.bn_momentum
        )
        # decoded once, kept at most twice the training size: 32-200 px models, 300 px images
        images = DecodedImages(max_side=2 * spec.resolution)
        data = load_lab_data(DataConfig(**config["data"]), images)
        seed = int(config["seed"])
        torch.manual_seed(seed)  # initialisation
        model = EfficientNet(
            spec, num_classes=data.num_classes, drop_path_rate=recipe.drop_path_rate
        )
        cost = profile(model, spec.resolution)
        pre = PreprocessConfig(input_size=spec.resolution, crop_pct=recipe.crop_pct)
        train_start = time.perf_counter()
        history = _train(model, recipe, data, pre, images, seed)
        train_s = time.perf_counter() - train_start
        val_acc, val_loss = _score(model, data.val, pre, images, recipe.eval_batch_size)
        test_acc, test_loss = _score(model, data.test, pre, images, recipe.eval_batch_size)
        latency = _latency_ms(model, spec.resolution, recipe.latency_runs)
        used_threads = torch.get_num_threads()
    return {
        **{k: v for k, v in config.items() if k not in ("spec", "data", "recipe")},
        "status": "ok",
        "model": spec.name,
        "resolution": spec.resolution,
        "params": cost.params,
        "macs": cost.macs,
        "gmacs": round(cost.gmacs, 6),
        "num_classes": data.num_classes,
        "train_images": len(data.train),
        "val_images": len(data.val) if data.val is not None else 0,
        "test_images": len(data.test) if data.test is not None else 0,
        "val_acc": val_acc,
        "val_loss": val_loss,
        "test_acc": test_acc,
        "test_loss": test_loss,
        "train_acc": history[-1]["train_acc"],
        "train_loss": history[-1]["train_loss"],
        "latency_ms": None if latency is None else round(latency, 3),
        "train_s": round(train_s, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "threads": used_threads,
        "host": platform.node(),
        "torch": torch.__version__,
        "history": history,
        "spec": config["spec"],
        "data": config["data"],
        "recipe": config["recipe"],
    }


def failed_result(config: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """What a runner records for a trial that raised: enough to see why without the logs."""
    return {
        **{k: v for k, v in config.items() if k not in ("spec", "data", "recipe")},
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }
