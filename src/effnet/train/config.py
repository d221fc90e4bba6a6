"""Typed run configuration: dataclass defaults, overridden by a YAML file, then by flags.

Every field is declared with :func:`setting`, which keeps its help text in the field's metadata:
the command line builds one flag per field from it, and :func:`effnet.train.resume` reads there
which fields a resumed run may change. The resolved config is saved next to the results
(``config.yaml``) so a run can be read back, repeated (``--config runs/NAME/config.yaml``) or
resumed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from effnet.data.augment import PRESETS, check_augment
from effnet.data.sources import LABEL_MODES
from effnet.data.splits import SplitFractions
from effnet.errors import ConfigError, did_you_mean
from effnet.files import write_text
from effnet.specs import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from effnet.train.optim import OPTIMIZERS, SCHEDULES

__all__ = [
    "FinetuneConfig",
    "TrainConfig",
    "field_metadata",
    "load_config",
    "merge_config",
    "save_config",
    "setting",
]

BALANCE = ("auto", "none", "sampler", "loss", "logit")
AMP = ("auto", "none", "bf16", "fp16")
SELECT_BY = ("auto", "accuracy", "balanced_accuracy", "macro_f1", "loss")
AUTO = "auto"
"""A field left ``auto`` (or, for sizes and counts, unset) is planned from the data and this
machine when the run starts (:mod:`effnet.train.plan`); the resolved value is saved."""


# The groups of ``effnet finetune --help`` / ``effnet train --help``, in the order they print.
PLAN = "plan: sized to the data and this machine"
DATA = "data"
MODEL = "model & weights"
HEAD = "phase 1: the new head on the frozen backbone"
OPTIM = "phase 2 / optimisation"
AUGMENT = "augmentation & regularisation"
EVAL = "evaluation"
EXECUTION = "execution"
OUTPUT = "output & tracking"
GROUPS = (PLAN, DATA, MODEL, HEAD, OPTIM, AUGMENT, EVAL, EXECUTION, OUTPUT)


def setting(
    default: Any,
    help: str,
    *,
    resumable: bool = False,
    flag: str | None = None,
    group: str | None = None,
    aliases: tuple[str, ...] = (),
    switch: tuple[str, Any] | None = None,
) -> Any:
    """A config field with its help text (the flag's help) in the field's metadata.

    ``resumable``: a resumed run may change it (how the run executes, not what it computes).
    ``flag``: the command-line name when it is not the field's (``source`` -> ``--data``).
    ``group``: the ``--help`` section it is listed in (:data:`GROUPS`).
    ``aliases``: more names for the same flag, those of timm's and torchvision's training
    scripts (``-b`` for ``--batch-size``). ``switch``: a flag without a value that sets the
    field to a constant (``("--model-ema", 0.9998)``: timm's EMA switch and default decay).
    """
    meta: dict[str, Any] = {"help": help, "resumable": resumable}
    if flag:
        meta["flag"] = flag
    if group:
        meta["group"] = group
    if aliases:
        meta["aliases"] = aliases
    if switch:
        meta["switch"] = switch
    return field(default=default, metadata=meta)


def field_metadata(cls: type, name: str) -> dict[str, Any]:
    """The metadata of field ``name``: the class's own, else the nearest base class's (a
    subclass that only changes a default keeps the base's help)."""
    for klass in cls.__mro__:
        if dataclasses.is_dataclass(klass):
            for f in dataclasses.fields(klass):
                if f.name == name and f.metadata:
                    return dict(f.metadata)
    return {}


@dataclass
class FinetuneConfig:
    """Everything a fine-tuning run depends on; every field is a flag of ``effnet finetune``."""

    # data
    data: str = setting("elpv", 'folder, split folders, CSV of path,label, or "elpv"', group=DATA)
    label_mode: str | None = setting(None, "elpv only: 4class | binary", group=DATA)
    split: str = setting(
        "70/15/15", 'train/val/test when only one set is given ("75/25": no val)', group=DATA
    )
    seed: int = setting(
        0, "drives the split, initialisation, sampling and augmentation", group=DATA
    )
    workers: int = setting(
        -1,
        "data-loader processes (-1: automatic)",
        resumable=True,
        group=EXECUTION,
        aliases=("-j",),
    )
    cache_images: bool = setting(
        True, "keep decoded images in memory (small datasets)", resumable=True, group=DATA
    )
    # the plan
    time_budget: str | None = setting(
        None,
        "finish within this wall time (10m, 90s, 1h30m): image size, epochs and schedule (and "
        "the model with --model auto) are planned from a few seconds of measurement on this "
        "machine, and the epochs adapt if the first one runs slower or faster than planned",
        group=PLAN,
    )
    # model and weights
    model: str = setting(
        "tf_efficientnet_lite0",
        "the model to fine-tune (its name fixes padding and BatchNorm); auto: the most accurate "
        "one with weights on this machine that the time budget affords",
        group=MODEL,
    )
    weights: str = setting(
        "default", "default | none (random init) | a weight tag | a file", group=MODEL
    )
    image_size: int | None = setting(
        None,
        "train/eval size (default, or auto: planned from the pictures' size, the weights' size "
        "and the time budget)",
        group=MODEL,
    )
    crop_pct: float | None = setting(
        None,
        "center-crop share, 1.0 = the whole picture (default, or auto: planned, 1.0; the "
        "weights' own crop can cut a defect at the border away)",
        group=MODEL,
    )
    drop_rate: float | None = setting(
        None, "dropout before the classifier (default: the variant's)", group=AUGMENT
    )
    drop_path_rate: float = setting(0.1, "stochastic depth for fine-tuning", group=AUGMENT)
    bn_recalibrate: bool = setting(
        True, "re-estimate BatchNorm statistics on the data first (AdaBN)", group=MODEL
    )
    bn_recalibrate_images: int = setting(
        512,
        "how many training images (a seeded sample) the statistics are measured on",
        group=MODEL,
    )
    # phase 1: the new head on a frozen backbone
    head_epochs: int = setting(
        2, "phase 1: epochs of the new head on the frozen backbone", group=HEAD
    )
    head_lr: float = setting(1e-3, "phase 1 learning rate", group=HEAD)
    head_augment: str = setting(
        "none", '"none" lets phase 1 cache the backbone\'s features once', group=HEAD
    )
    cache_features: bool = setting(
        True, 'phase 1 on cached features when head_augment is "none"', group=HEAD
    )
    # phase 2: everything, small learning rate, warmup then cosine decay
    epochs: int | None = setting(
        None,
        "phase 2: epochs of training everything (default, or auto: planned, 10 without a time "
        "budget)",
        group=OPTIM,
    )
    lr: float | str | None = setting(
        None,
        "phase 2 peak learning rate (default: planned from the weights and the data size); auto: "
        "a learning-rate range test after phase 1 (fastai's lr_find)",
        group=OPTIM,
    )
    optimizer: str = setting(
        "adamw", f"{' | '.join(OPTIMIZERS)} (rmsprop: the paper's)", group=OPTIM
    )
    momentum: float = setting(0.9, "sgd / rmsprop momentum", group=OPTIM)
    weight_decay: float = setting(
        0.05, "applied to conv/linear weights, never to norms or biases", group=OPTIM
    )
    schedule: str = setting(
        "cosine", "cosine | step (x step_gamma every step_epochs) | constant", group=OPTIM
    )
    step_epochs: float = setting(
        2.4, "step schedule: decay interval (the paper: 0.97 every 2.4 epochs)", group=OPTIM
    )
    step_gamma: float = setting(0.97, "step schedule: decay factor", group=OPTIM)
    warmup_epochs: float = setting(1.0, "linear warmup, in epochs", group=OPTIM)
    min_lr: float = setting(1e-6, "the learning rate cosine decay ends at", group=OPTIM)
    freeze_stages: int = setting(
        0, "keep the stem and this many early stages frozen in phase 2", group=OPTIM
    )
    layer_decay: float | None = setting(
        None,
        "layer-wise learning-rate decay: of n layers (model.group_matcher, stem to classifier) "
        "layer i trains at lr * decay^(n-1-i), e.g. 0.8, timm's --layer-decay (default: off)",
        group=OPTIM,
    )
    augment: str = setting(
        "auto",
        "none | flip (no crop) | light | medium | heavy; auto: none (a flip or crop can change "
        "what a picture shows: digits, text, left/right)",
        group=AUGMENT,
    )
    magnitude: int | None = setting(
        None, "RandAugment magnitude for medium/heavy (default 9)", group=AUGMENT
    )
    auto_augment: str | None = setting(
        None,
        "auto-augment policy, replacing the preset's RandAugment: timm's rand-m9-n2 (magnitude "
        "of 10; mstd is dropped), ra, ta_wide, augmix, imagenet | cifar10 | svhn (AutoAugment)",
        group=AUGMENT,
        aliases=("--aa",),
    )
    random_erase: float | None = setting(
        None,
        "random-erasing probability (default: 0.25 with --augment heavy, else 0)",
        group=AUGMENT,
        aliases=("--reprob",),
    )
    vflip: bool = setting(False, "also flip vertically (top/bottom-symmetric data)", group=AUGMENT)
    mixup: float = setting(0.0, "mixup alpha (0 = off)", group=AUGMENT)
    cutmix: float = setting(0.0, "cutmix alpha (0 = off)", group=AUGMENT)
    label_smoothing: float = setting(0.1, "label smoothing of the cross-entropy", group=AUGMENT)
    balance: str = setting(
        "auto",
        "none | sampler (class-balanced sampling) | loss (class weights) | logit (logit-adjusted "
        "loss: log class priors added to the logits in training, Menon et al. 2021); auto: "
        "logit when the largest class has twice the images of the smallest",
        group=DATA,
    )
    select_by: str = setting(
        "auto",
        "the validation metric the best epoch is chosen by: accuracy | balanced_accuracy | "
        "macro_f1 | loss; auto: balanced_accuracy when the classes are unbalanced",
        group=EVAL,
    )
    ema: float = setting(
        0.0,
        "EMA decay of the weights (e.g. 0.999; 0 = off)",
        group=AUGMENT,
        aliases=("--model-ema-decay",),
        switch=("--model-ema", 0.9998),
    )
    grad_clip: float = setting(0.0, "max gradient norm (0 = off)", group=OPTIM)
    accum_steps: int = setting(1, "gradient accumulation", group=OPTIM)
    progressive: str | None = setting(
        None, 'e.g. "stages=4,size=128:224,randaug=5:15,dropout=0.1:0.3"', group=OPTIM
    )
    sync_bn: bool = setting(False, "SyncBatchNorm across ranks under torchrun", group=EXECUTION)
    compile: bool = setting(
        False,
        "torch.compile the model phase 2 trains (the first steps then take longer)",
        resumable=True,
        group=EXECUTION,
    )
    grad_checkpointing: bool = setting(
        False,
        "recompute each block's activations in backward (model.set_grad_checkpointing): less "
        "memory, more compute, the same weights",
        resumable=True,
        group=EXECUTION,
    )
    early_stop: int = setting(
        0,
        "stop phase 2 after this many epochs without improvement (0 = off)",
        resumable=True,
        group=OPTIM,
    )
    tta: bool = setting(
        False,
        "average test predictions over flips (vertical ones too with --vflip)",
        resumable=True,
        group=EVAL,
    )
    # execution
    batch_size: int = setting(
        32, "training batch size (per process under torchrun)", group=OPTIM, aliases=("-b",)
    )
    eval_batch_size: int = setting(64, "evaluation batch size", resumable=True, group=EVAL)
    amp: str = setting(
        "auto",
        "auto (bf16 where measured faster on this machine) | none | bf16 | fp16 (CUDA)",
        group=EXECUTION,
    )
    channels_last: bool = setting(True, "channels-last memory format", group=EXECUTION)
    device: str = setting("auto", "auto | cpu | cuda | cuda:N", resumable=True, group=EXECUTION)
    threads: int = setting(
        0, "torch intra-op threads (0: leave as is)", resumable=True, group=EXECUTION
    )
    out: str | None = setting(None, "run directory (default runs/<data>-<model>)", group=OUTPUT)
    tensorboard: bool = setting(
        False,
        "also log to TensorBoard in RUN/tensorboard (pip install 'effnet[tensorboard]')",
        resumable=True,
        group=OUTPUT,
    )
    mlflow: bool = setting(
        False,
        "also log to MLflow: the config and each epoch's metrics, to MLFLOW_TRACKING_URI or "
        "else MLflow's local store beside the run, RUN/../mlflow.db (pip install "
        "'effnet[mlflow]')",
        resumable=True,
        group=OUTPUT,
    )
    progress: bool = setting(True, "progress bars", resumable=True, group=OUTPUT)
    extra: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "free-form notes saved with the run"}
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every value checked before any work: its type (a whole number where one is meant,
        no ``true`` for a number), its range (finite, positive learning rates, ...), the
        choices of the fields that name one, and the values that must agree with each other.
        The model name, the weights and the data are checked against the registry, the weight
        catalogue and the disk when a run starts (:func:`effnet.train.finetune`)."""
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), hints[f.name])
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ConfigError(
                    f"{name} must be one of {', '.join(allowed)}, got {value!r}."
                    + did_you_mean(str(value), allowed)
                )
        for name, (ok, wanted) in _RANGES.items():
            value = getattr(self, name, None)
            if value is not None and value != AUTO and not ok(value):
                raise ConfigError(
                    f"{name} must be {wanted}, got {value!r} "
                    f"(default: {_default(type(self), name)})"
                )
        for name in ("data", "model", "weights", "split", "device", "out"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ConfigError(f"{name} is empty (default: {_default(type(self), name)})")
        if self.epochs == 0 and self.head_epochs == 0:
            raise ConfigError("both phases have 0 epochs: set --epochs or --head-epochs")
        lr = self.lr
        if isinstance(lr, str) and lr != AUTO:
            raise ConfigError(f"lr must be a number > 0 or auto (a range test), got {lr!r}")
        if isinstance(lr, float) and self.min_lr > lr and self.schedule != "constant":
            raise ConfigError(
                f"min_lr ({self.min_lr:g}) is above lr ({self.lr:g}): the schedule decays from "
                f"lr to min_lr; lower --min-lr"
            )
        SplitFractions.parse(self.split)  # raises, saying what a split looks like
        if self.time_budget is not None:
            from effnet.train.plan import parse_duration

            parse_duration(self.time_budget)
        check_augment(self.preset, self.magnitude, self.auto_augment)
        _check_device(self.device)
        if self.progressive:
            from effnet.train.progressive import ProgressiveSchedule

            schedule = ProgressiveSchedule.parse(self.progressive)
            if schedule.randaug is not None and self.augment not in ("medium", "heavy"):
                raise ConfigError(
                    f"the progressive schedule sets RandAugment magnitudes, but augment is "
                    f"{self.augment!r}; use --augment medium or heavy (they include RandAugment)"
                )

    @property
    def preset(self) -> str:
        """The augmentation preset: ``augment``, or for ``auto`` the one the other augmentation
        settings need (a RandAugment magnitude: medium; an auto-augment policy: light), else
        none (what the plan chooses)."""
        if self.augment != AUTO:
            return self.augment
        if self.magnitude is not None:
            return "medium"
        return "light" if self.auto_augment else "none"

    @property
    def run_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        data = Path(self.data).name or self.data
        mode = f"-{self.label_mode}" if self.label_mode else ""
        return Path("runs") / f"{data}{mode}-{self.model}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainConfig(FinetuneConfig):
    """Training from scratch: one phase, random initialisation, the paper-style optimizer.

    Same fields as :class:`FinetuneConfig` (so runs resume and recipes load the same way); only
    the defaults differ (each field's help is its FinetuneConfig help).
    """

    weights: str = "none"
    bn_recalibrate: bool = False  # no pretrained statistics to correct
    head_epochs: int = 0
    epochs: int = 30
    lr: float = 0.05  # SGD at batch 32 (linear scaling of ~0.4 at 256)
    optimizer: str = "sgd"
    weight_decay: float = 5e-5
    warmup_epochs: float = 3.0
    augment: str = "medium"
    drop_path_rate: float = 0.2
    min_lr: float = 1e-5


_CHOICES: dict[str, tuple[str, ...]] = {
    "augment": (AUTO, *PRESETS),
    "select_by": SELECT_BY,
    "head_augment": PRESETS,
    "balance": BALANCE,
    "amp": AMP,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "label_mode": LABEL_MODES,
}
"""The fields that name one of a few choices, and the choices."""

_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (lambda v: 0 <= v < 2**32, "in [0, 2^32)"),
    "workers": (lambda v: v >= -1, ">= 0, or -1 for automatic"),
    "image_size": (
        lambda v: MIN_INPUT_SIZE <= v <= MAX_INPUT_SIZE,
        f"in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}] px (the network halves it 5 times)",
    ),
    "crop_pct": (lambda v: 0 < v <= 1, "in (0, 1] (1.0 keeps the whole image)"),
    "drop_rate": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "drop_path_rate": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "head_epochs": (lambda v: v >= 0, ">= 0"),
    "head_lr": (lambda v: v > 0, "a finite number > 0"),
    "epochs": (lambda v: v >= 0, ">= 0"),
    "lr": (lambda v: v > 0, "a finite number > 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "step_epochs": (lambda v: v > 0, "> 0"),
    "step_gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "warmup_epochs": (lambda v: v >= 0, ">= 0"),
    "min_lr": (lambda v: v >= 0, ">= 0"),
    "freeze_stages": (lambda v: v >= 0, ">= 0"),
    "layer_decay": (lambda v: 0 < v <= 1, "in (0, 1] (1 = every layer at lr)"),
    "random_erase": (lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    "magnitude": (lambda v: 0 <= v <= 30, "in [0, 30] (RandAugment's scale)"),
    "mixup": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "cutmix": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "ema": (lambda v: 0 <= v < 1, "in [0, 1) (0 = off)"),
    "grad_clip": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "accum_steps": (lambda v: v >= 1, ">= 1"),
    "early_stop": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "eval_batch_size": (lambda v: v >= 1, ">= 1"),
    "bn_recalibrate_images": (lambda v: v >= 1, ">= 1"),
    "threads": (lambda v: v >= 0, ">= 0 (0 = leave torch's setting)"),
}
"""Each numeric field's valid range; a field not listed takes any value of its type. Numbers
are finite everywhere (checked with the type)."""

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_WHAT = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
         dict: "a mapping of keys to values"}  # fmt: skip


def _kind(hint: Any) -> tuple[type | None, bool]:
    """(bool/int/float/str/dict or None for anything else, whether None is allowed) of a
    field's type hint. ``float | str`` is a number that may also be ``auto`` (the learning
    rate): its kind is float."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if set(rest) == {float, str}:
            rest = [float]
        hint = rest[0] if len(rest) == 1 else None
    base = typing.get_origin(hint) or hint
    return (base if base in _WHAT else None), optional


def _takes_auto(hint: Any) -> bool:
    """Whether a field of this type hint may hold the text ``auto`` (``float | str``)."""
    return str in typing.get_args(hint)


PLANNED = ("image_size", "crop_pct", "epochs", "lr")
"""The numeric fields whose unset value (None) means "planned"."""


def _default(cls: type, name: str) -> Any:
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is None and name in PLANNED:
                return "planned"
            return f.default if f.default is not dataclasses.MISSING else "none"
    return "none"


def _check_type(name: str, value: Any, hint: Any) -> None:
    kind, optional = _kind(hint)
    if kind is None or (value == AUTO and _takes_auto(hint)):
        return
    if value is None:
        if optional:
            return
        raise ConfigError(f"{name} expects {_WHAT[kind]}, got nothing (null)")
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(f"{name} expects {_WHAT[kind]}, got {value!r} ({type(value).__name__})")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")


def _check_device(device: str) -> None:
    if device == "auto":
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"device must be auto, cpu, cuda, cuda:N or another torch device, got {device!r}."
            + did_you_mean(device, ("auto", "cpu", "cuda", "mps"))
        ) from None


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """A YAML or flag value as the field's type, strictly: a YAML boolean is never a number
    (``lr: yes`` would train at 1.0), a fraction never a count (``epochs: 2.5``). Numbers
    written as text (YAML reads ``1e-4`` as a string) and whole floats for counts (``2.0``) are
    what they say."""
    kind, optional = _kind(hint)
    if value is None or kind is None:
        return value
    if isinstance(value, str) and value.strip().lower() == AUTO and kind in (int, float):
        if str in typing.get_args(hint):
            return AUTO  # a learning rate found by a range test
        if optional:
            return None  # a size or count left to the plan
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{name} expects true or false, got {value!r}")
    wrong = f"{name} expects {_WHAT[kind]}, got {value!r}"
    if isinstance(value, bool):
        raise ConfigError(f"{wrong} (YAML reads yes/no/on/off/true/false as booleans)")
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        if not isinstance(value, int):
            raise ConfigError(wrong)
        return value
    if kind is float:
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        if not isinstance(value, (int, float)):
            raise ConfigError(wrong)
        return float(value)
    if not isinstance(value, kind):
        quote = " (quote it in YAML)" if kind is str and isinstance(value, (int, float)) else ""
        raise ConfigError(wrong + quote)
    return value


def merge_config(base: FinetuneConfig, overrides: dict[str, Any]) -> FinetuneConfig:
    """A new config with ``overrides`` applied and validated; an unknown key is an error that
    names the near keys."""
    known = [f.name for f in dataclasses.fields(base)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        near = "".join(did_you_mean(k, known) for k in unknown)
        raise ConfigError(
            f"unknown config key(s) {', '.join(unknown)}.{near} Known keys: {', '.join(known)}"
        )
    hints = get_type_hints(type(base))
    values = dict(overrides)
    if isinstance(values.get("progressive"), dict):  # a recipe's YAML block -> the flag's text
        from effnet.train.progressive import ProgressiveSchedule

        values["progressive"] = ProgressiveSchedule.from_dict(values["progressive"]).to_text()
    values = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    return dataclasses.replace(base, **values)


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader (plain values only, no tags that build objects) that also refuses a
    key given twice, where YAML would quietly keep the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"key {key!r} is given twice (lines {seen[key]} and {line}); keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | os.PathLike[str], base: FinetuneConfig | None = None) -> FinetuneConfig:
    """Read a YAML file of config keys (dashes or underscores) over ``base`` (or the defaults).

    The file holds plain values only: a tag that would build a Python object (``!!python/...``)
    is refused, never run. Every problem (a missing file, a YAML syntax error, a key given
    twice, an unknown key, a value of the wrong type) is a :class:`ConfigError` naming the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}; pass a YAML file of config keys") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; --config takes a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path} is not a text file (not UTF-8); --config takes a YAML file of config keys"
        ) from None
    try:
        data = yaml.load(text, Loader=_ConfigLoader) or {}  # a SafeLoader: plain values only
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a mapping of config keys (lr: 0.001, ...), got a "
            f"{type(data).__name__}"
        )
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    try:
        return merge_config(base or FinetuneConfig(), data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
    problem = str(getattr(exc, "problem", None) or exc).strip()
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        tag = problem.split("tag", 1)[1].strip().strip("'").replace("tag:yaml.org,2002:", "!!")
        return (
            f"{where}: the tag {tag} asks YAML to build a Python object; effnet reads plain "
            f"values only (numbers, text, true/false, lists, mappings) and never runs code from "
            f"a config. Remove the tag"
        )
    return (
        f"not valid YAML: {problem} at {where}; fix that line (each setting on its own line "
        f"as key: value)"
    )


def save_config(config: FinetuneConfig, path: str | os.PathLike[str]) -> Path:
    return write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
