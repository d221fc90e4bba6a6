"""Typed run configuration: dataclass defaults, overridden by a YAML file, then by flags.

The resolved config is saved next to the results (``config.yaml``) so a run can be read back,
repeated (``--config runs/NAME/config.yaml``) or resumed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

__all__ = ["FinetuneConfig", "TrainConfig", "load_config", "merge_config", "save_config"]

AUGMENTS = ("none", "flip", "light", "medium", "heavy")
BALANCE = ("none", "sampler", "loss")
AMP = ("auto", "none", "bf16", "fp16")
OPTIMIZERS = ("adamw", "sgd", "rmsprop")
SCHEDULES = ("cosine", "step", "constant")


@dataclass
class FinetuneConfig:
    """Everything a fine-tuning run depends on. Field comments are the CLI help."""

    # data
    data: str = "elpv"  # folder, split folders, CSV of path,label, or "elpv"
    label_mode: str | None = None  # elpv only: 4class | binary
    split: str = "70/15/15"  # train/val/test when only one set is given ("75/25": no val)
    seed: int = 0  # drives the split, initialisation, sampling and augmentation
    workers: int = -1  # data-loader processes (-1: automatic)
    cache_images: bool = True  # keep decoded images in memory (small datasets)
    # model and weights
    model: str = "efficientnet_lite0"
    weights: str = "default"  # default | none (random init) | a weight tag | a file
    image_size: int | None = None  # train/eval size (default: the weights' size)
    crop_pct: float | None = None  # center-crop share (default: the weights'; 1.0 = whole image)
    drop_rate: float | None = None  # dropout before the classifier (default: the variant's)
    drop_path_rate: float = 0.1  # stochastic depth for fine-tuning
    bn_recalibrate: bool = True  # re-estimate BatchNorm statistics on the data first (AdaBN)
    # phase 1: the new head on a frozen backbone
    head_epochs: int = 2
    head_lr: float = 1e-3
    head_augment: str = "none"  # "none" lets phase 1 cache the backbone's features once
    cache_features: bool = True  # phase 1 on cached features when head_augment is "none"
    # phase 2: everything, small learning rate, warmup then cosine decay
    epochs: int = 8
    lr: float = 1e-4
    optimizer: str = "adamw"  # adamw | sgd | rmsprop (the paper's)
    momentum: float = 0.9  # sgd / rmsprop momentum
    weight_decay: float = 0.05  # applied to conv/linear weights, never to norms or biases
    schedule: str = "cosine"  # cosine | step (x step_gamma every step_epochs) | constant
    step_epochs: float = 2.4  # step schedule: decay interval (the paper: 0.97 every 2.4 epochs)
    step_gamma: float = 0.97
    warmup_epochs: float = 1.0
    min_lr: float = 1e-6
    freeze_stages: int = 0  # keep the stem and this many early stages frozen in phase 2
    augment: str = "light"  # none | flip (no crop) | light | medium | heavy
    magnitude: int | None = None  # RandAugment magnitude for medium/heavy (default 9)
    vflip: bool = False  # also flip vertically (top/bottom-symmetric data)
    mixup: float = 0.0  # mixup alpha (0 = off)
    cutmix: float = 0.0  # cutmix alpha (0 = off)
    label_smoothing: float = 0.1
    balance: str = "none"  # none | sampler (class-balanced sampling) | loss (class weights)
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.999; 0 = off)
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    accum_steps: int = 1  # gradient accumulation
    progressive: str | None = None  # e.g. "stages=4,size=128:224,randaug=5:15,dropout=0.1:0.3"
    sync_bn: bool = False  # SyncBatchNorm across ranks under torchrun
    early_stop: int = 0  # stop phase 2 after this many epochs without improvement (0 = off)
    tta: bool = False  # average test predictions over flips (vertical ones too with --vflip)
    # execution
    batch_size: int = 32
    eval_batch_size: int = 64
    amp: str = "auto"  # auto (bf16 where fast) | none | bf16 | fp16 (CUDA)
    channels_last: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads (0: leave as is)
    out: str | None = None  # run directory (default runs/<data>-<model>)
    tensorboard: bool = False
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes saved with the run

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        checks = [
            (self.augment in AUGMENTS, f"augment must be one of {AUGMENTS}, got {self.augment!r}"),
            (
                self.head_augment in AUGMENTS,
                f"head_augment must be one of {AUGMENTS}, got {self.head_augment!r}",
            ),
            (self.balance in BALANCE, f"balance must be one of {BALANCE}, got {self.balance!r}"),
            (self.amp in AMP, f"amp must be one of {AMP}, got {self.amp!r}"),
            (
                self.optimizer in OPTIMIZERS,
                f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}",
            ),
            (
                self.schedule in SCHEDULES,
                f"schedule must be one of {SCHEDULES}, got {self.schedule!r}",
            ),
            (self.epochs >= 0 and self.head_epochs >= 0, "epochs and head_epochs must be >= 0"),
            (
                self.epochs + self.head_epochs > 0,
                "both phases have 0 epochs: set --epochs or --head-epochs",
            ),
            (
                self.batch_size >= 1 and self.accum_steps >= 1,
                "batch_size, accum_steps must be >= 1",
            ),
            (self.lr > 0 and self.head_lr > 0, "learning rates must be > 0"),
            (0.0 <= self.ema < 1.0, f"ema decay must be in [0, 1), got {self.ema}"),
            (0.0 <= self.label_smoothing < 1.0, "label_smoothing must be in [0, 1)"),
            (self.image_size is None or self.image_size >= 32, "image_size must be >= 32"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

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
    the defaults differ.
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


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """YAML/flag values to the field's type (ints for floats are fine; strings for numbers not)."""
    text = str(hint)
    if value is None:
        return None
    if "bool" in text and not isinstance(value, bool):
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(f"{name} expects true/false, got {value!r}")
    if "float" in text and not isinstance(value, bool):
        # YAML reads "1e-4" (no dot) as a string: accept it as the number it obviously is
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} expects a number, got {value!r}") from None
    if "int" in text and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{name} expects a whole number, got {value!r}") from None
    return value


def merge_config(base: FinetuneConfig, overrides: dict[str, Any]) -> FinetuneConfig:
    """A new config with ``overrides`` applied; unknown keys are an error that lists the known."""
    known = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; known keys: {', '.join(sorted(known))}")
    hints = get_type_hints(type(base))
    values = {k: _coerce(k, v, hints[k]) for k, v in overrides.items()}
    if isinstance(values.get("progressive"), dict):  # a recipe's YAML block -> the flag's text
        from effnet.train.progressive import ProgressiveSchedule

        values["progressive"] = ProgressiveSchedule.from_dict(values["progressive"]).to_text()
    return dataclasses.replace(base, **values)


def load_config(path: str | os.PathLike[str], base: FinetuneConfig | None = None) -> FinetuneConfig:
    """Read a YAML file of config keys (dashes or underscores) over ``base`` (or the defaults)."""
    text = Path(path).read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    return merge_config(base or FinetuneConfig(), data)


def save_config(config: FinetuneConfig, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    os.replace(tmp, path)
    return path
