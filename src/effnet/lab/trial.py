"""One trial of a scaling experiment: build a model from a spec, train it under a fixed short
recipe, evaluate it, time it. Nothing else.

:func:`run_trial` takes and returns plain JSON-able dicts, so the same function runs in this
process, in a spawned worker of a process pool, or as a Ray task on another machine: everything
it needs (spec, data source, recipe, seed) travels in the config, and it loads the data itself.
Every model starts from random initialisation (the models differ, so no checkpoint fits them
all), and every number in the result is measured on the model that was trained.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import statistics
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from effnet.cost import profile
from effnet.data import (
    PRESETS,
    LabelledSet,
    SourceSplits,
    SplitFractions,
    eval_transform,
    load_image,
    load_source,
    stratified_split,
    train_transform,
)
from effnet.model import EfficientNet
from effnet.specs import PreprocessConfig, spec_from_dict
from effnet.train.distributed import DistContext
from effnet.train.loaders import epoch_seed, make_loader
from effnet.train.loop import evaluate, train_one_epoch
from effnet.train.optim import build_optimizer, lr_lambda

__all__ = ["AUGMENTS", "DataConfig", "Recipe", "failed_result", "load_lab_data", "run_trial"]

_OPTIMIZERS = ("adamw", "sgd", "rmsprop")  # what effnet.train.optim.build_optimizer builds
AUGMENTS = PRESETS  # "flip" included: the eval view, flipped, never cropped
"""``flip``: the eval pipeline plus random horizontal (and with ``vflip`` vertical) flips. Random
crops can cut a small defect out of the picture and leave its label wrong; flips never do."""


@dataclass(frozen=True)
class DataConfig:
    """Where a trial's images come from and how they are split (the same in every trial)."""

    source: str = "elpv"  # class folder, split folders, CSV of path,label, or "elpv"
    label_mode: str | None = None  # elpv only: 4class | binary
    split: str = "70/15/15"  # train/val/test when the source is one set
    split_seed: int = 0  # the split is fixed across trials and seeds: only training varies
    subsample: float = 1.0  # stratified fraction of every split kept (speed); 1.0 = all

    def __post_init__(self) -> None:
        if not 0.0 < self.subsample <= 1.0:
            raise ValueError(f"subsample must be in (0, 1], got {self.subsample}")
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

    Defaults suit small models trained from scratch for a few epochs: AdamW with warmup and
    cosine decay, light augmentation, mild dropout and no stochastic depth (too few steps for
    it to pay off), BatchNorm momentum 0.1 so running statistics catch up within a few hundred
    steps (the TF default 0.01 lags behind the weights in a run this short).
    """

    epochs: int = 5
    batch_size: int = 32
    eval_batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    augment: str = "light"  # flip | none | light | medium | heavy (effnet.data presets)
    vflip: bool = False  # also flip vertically (top/bottom-symmetric data such as solar cells)
    dropout: float = 0.1
    drop_path: float = 0.0
    bn_momentum: float = 0.1
    crop_pct: float = 1.0  # eval: resize to the input size, no center crop
    latency_runs: int = 20  # timed batch-1 forward passes after training (0 = skip)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.eval_batch_size < 1:
            raise ValueError(
                f"need epochs >= 1, batch_size >= 2 (BatchNorm) and eval_batch_size >= 1, got "
                f"{self.epochs}, {self.batch_size}, {self.eval_batch_size}"
            )
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError(
                f"need lr > 0, weight_decay >= 0, warmup_epochs >= 0, got {self.lr}, "
                f"{self.weight_decay}, {self.warmup_epochs}"
            )
        if self.latency_runs < 0:
            raise ValueError(f"latency_runs must be >= 0, got {self.latency_runs}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; expected one of {', '.join(_OPTIMIZERS)}"
            )
        if self.augment not in AUGMENTS:
            raise ValueError(
                f"unknown augmentation preset {self.augment!r}; expected one of "
                f"{', '.join(AUGMENTS)}"
            )


def _subsample(part: LabelledSet | None, fraction: float, seed: int) -> LabelledSet | None:
    """A stratified ``fraction`` of ``part`` (the split code's per-class rounding)."""
    if part is None or fraction >= 1.0 or len(part) == 0:
        return part
    drop = 1.0 - fraction
    kept = stratified_split(part, SplitFractions(val=drop, test=0.0), seed=seed)["train"]
    if len(kept) == 0:
        raise ValueError(
            f"subsample {fraction} keeps no images of a split of {len(part)}; raise --subsample"
        )
    return kept


def load_lab_data(config: DataConfig) -> SourceSplits:
    """The source split as ``config`` says, subsampled; identical in every trial."""
    splits = load_source(
        config.source,
        label_mode=config.label_mode,
        fractions=SplitFractions.parse(config.split),
        seed=config.split_seed,
    )
    if splits.val is None:
        raise ValueError(
            f"{config.source}: the lab ranks models on a validation split and found none; use a "
            f"split with a val part such as '70/15/15' (got {config.split!r})"
        )
    if config.subsample < 1.0:
        splits = dataclasses.replace(
            splits,
            train=_subsample(splits.train, config.subsample, config.split_seed),
            val=_subsample(splits.val, config.subsample, config.split_seed),
            test=_subsample(splits.test, config.subsample, config.split_seed),
        )
    return splits


class _SmallImages:
    """Decode each file once per trial and keep it at most ``side`` pixels on its short side.

    Trials train at 32-200 px; keeping 300 px originals would cost ~10x the memory per worker
    (and a pool runs several) and make every random crop resample a needlessly big picture.
    Twice the training size leaves a 35% random crop (the ``light`` preset) near full detail.
    """

    def __init__(self, side: int) -> None:
        self.side = side
        self._memo: dict[str, Image.Image] = {}

    def __call__(self, path: str | os.PathLike[str]) -> Image.Image:
        key = os.fspath(path)
        image = self._memo.get(key)
        if image is None:
            image = load_image(Path(key))
            short = min(image.size)
            if short > self.side:
                w, h = image.size
                size = (round(w * self.side / short), round(h * self.side / short))
                image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            self._memo[key] = image
        return image.copy()  # transforms must not edit the cached picture


def _train_transform(pre: PreprocessConfig, recipe: Recipe, eval_tf: v2.Compose) -> v2.Compose:
    if recipe.augment != "flip":
        return train_transform(pre, recipe.augment, vflip=recipe.vflip)
    flips: list[v2.Transform] = [v2.RandomHorizontalFlip()]
    if recipe.vflip:
        flips.append(v2.RandomVerticalFlip())
    return v2.Compose([*flips, *eval_tf.transforms])


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


def run_trial(config: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """Train and evaluate the model ``config["spec"]`` describes; return the measured result.

    ``config`` holds ``id``, ``spec`` (:func:`effnet.specs.spec_to_dict`), ``data``
    (:class:`DataConfig` fields), ``recipe`` (:class:`Recipe` fields) and ``seed``; any other
    keys (strategy, target, coefficients) are copied into the result. ``threads`` > 0 sets
    torch's intra-op threads (a pool gives each worker its share of the cores).
    """
    wall = time.perf_counter()
    if threads > 0:
        torch.set_num_threads(threads)
    spec = spec_from_dict(config["spec"])
    recipe = Recipe(**config["recipe"])
    data = load_lab_data(DataConfig(**config["data"]))
    seed = int(config["seed"])
    # The recipe, not the spec, owns regularisation: every model of an experiment gets the same.
    spec = spec.replace(dropout=recipe.dropout, bn_momentum=recipe.bn_momentum)
    resolution = spec.resolution

    torch.manual_seed(seed)  # initialisation and (loader workers = 0) augmentation
    model = EfficientNet(spec, num_classes=data.num_classes, drop_path_rate=recipe.drop_path)
    cost = profile(model, resolution)

    pre = PreprocessConfig(input_size=resolution, crop_pct=recipe.crop_pct)
    images = _SmallImages(2 * resolution)
    ctx = DistContext()
    eval_tf = eval_transform(pre)
    train_tf = _train_transform(pre, recipe, eval_tf)
    # drop_last: a last batch of one image would break BatchNorm in train mode
    drop_last = len(data.train) > recipe.batch_size
    steps_per_epoch = (
        len(data.train) // recipe.batch_size
        if drop_last
        else math.ceil(len(data.train) / recipe.batch_size)
    )
    optimizer = build_optimizer(
        model.named_parameters(), recipe.optimizer, recipe.lr, recipe.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lr_lambda(recipe.epochs * steps_per_epoch, round(recipe.warmup_epochs * steps_per_epoch)),
    )

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=recipe.label_smoothing)

    history = []
    train_start = time.perf_counter()
    for epoch in range(recipe.epochs):
        loader = make_loader(
            data.train,
            train_tf,
            ctx,
            batch_size=recipe.batch_size,
            train=True,
            seed=epoch_seed(seed, "lab", epoch),
            workers=0,  # a trial is already one of several parallel workers
            loader=images,
            drop_last=drop_last,
        )
        stats = train_one_epoch(
            model, loader, optimizer, loss_fn, ctx, scheduler=scheduler, progress=False
        )
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(stats.loss, 5),
                "train_acc": round(stats.acc, 5),
                "images_per_s": round(stats.images_per_s, 1),
            }
        )
    train_s = time.perf_counter() - train_start

    def score(part: LabelledSet | None) -> tuple[float | None, float | None]:
        if part is None or len(part) == 0:
            return None, None
        loader = make_loader(
            part,
            eval_tf,
            ctx,
            batch_size=recipe.eval_batch_size,
            train=False,
            workers=0,
            loader=images,
        )
        result = evaluate(model, loader, ctx)
        return round(result.acc, 5), round(result.loss, 5)

    val_acc, val_loss = score(data.val)
    test_acc, test_loss = score(data.test)
    latency = _latency_ms(model, resolution, recipe.latency_runs)
    result = {k: v for k, v in config.items() if k not in ("spec", "data", "recipe")}
    result.update(
        status="ok",
        model=spec.name,
        resolution=resolution,
        params=cost.params,
        macs=cost.macs,
        gmacs=round(cost.gmacs, 6),
        num_classes=data.num_classes,
        train_images=len(data.train),
        val_images=len(data.val) if data.val is not None else 0,
        test_images=len(data.test) if data.test is not None else 0,
        val_acc=val_acc,
        val_loss=val_loss,
        test_acc=test_acc,
        test_loss=test_loss,
        train_acc=history[-1]["train_acc"],
        train_loss=history[-1]["train_loss"],
        latency_ms=None if latency is None else round(latency, 3),
        train_s=round(train_s, 2),
        wall_s=round(time.perf_counter() - wall, 2),
        threads=torch.get_num_threads(),
        host=platform.node(),
        torch=torch.__version__,
        history=history,
        spec=config["spec"],
        data=config["data"],
        recipe=config["recipe"],
    )
    return result


def failed_result(config: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """What a runner records for a trial that raised: enough to see why without the logs."""
    return {
        **{k: v for k, v in config.items() if k not in ("spec", "data", "recipe")},
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }
