"""Typed run configuration: dataclass defaults, overridden by a YAML file, then by flags.

Every field is declared with :func:`setting`, which keeps its help text in the field's metadata:
the command line builds one flag per field from it, and :func:`effnet.train.resume` reads there
which fields a resumed run may change. The resolved config is saved next to the results
(``config.yaml``) so a run can be read back, repeated (``--config runs/NAME/config.yaml``) or
resumed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from effnet.data.augment import PRESETS
from effnet.errors import ConfigError
from effnet.files import write_text
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

BALANCE = ("none", "sampler", "loss")
AMP = ("auto", "none", "bf16", "fp16")


def setting(default: Any, help: str, *, resumable: bool = False, flag: str | None = None) -> Any:
    """A config field with its help text (the flag's help) in the field's metadata.

    ``resumable``: a resumed run may change it (how the run executes, not what it computes).
    ``flag``: the command-line name when it is not the field's (``source`` -> ``--data``).
    """
    meta: dict[str, Any] = {"help": help, "resumable": resumable}
    if flag:
        meta["flag"] = flag
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
    data: str = setting("elpv", 'folder, split folders, CSV of path,label, or "elpv"')
    label_mode: str | None = setting(None, "elpv only: 4class | binary")
    split: str = setting("70/15/15", 'train/val/test when only one set is given ("75/25": no val)')
    seed: int = setting(0, "drives the split, initialisation, sampling and augmentation")
    workers: int = setting(-1, "data-loader processes (-1: automatic)", resumable=True)
    cache_images: bool = setting(
        True, "keep decoded images in memory (small datasets)", resumable=True
    )
    # model and weights
    model: str = setting(
        "tf_efficientnet_lite0", "the model to fine-tune (its name fixes padding and BatchNorm)"
    )
    weights: str = setting("default", "default | none (random init) | a weight tag | a file")
    image_size: int | None = setting(None, "train/eval size (default: the weights' size)")
    crop_pct: float | None = setting(
        None, "center-crop share (default: the weights'; 1.0 = whole image)"
    )
    drop_rate: float | None = setting(
        None, "dropout before the classifier (default: the variant's)"
    )
    drop_path_rate: float = setting(0.1, "stochastic depth for fine-tuning")
    bn_recalibrate: bool = setting(
        True, "re-estimate BatchNorm statistics on the data first (AdaBN)"
    )
    # phase 1: the new head on a frozen backbone
    head_epochs: int = setting(2, "phase 1: epochs of the new head on the frozen backbone")
    head_lr: float = setting(1e-3, "phase 1 learning rate")
    head_augment: str = setting("none", '"none" lets phase 1 cache the backbone\'s features once')
    cache_features: bool = setting(True, 'phase 1 on cached features when head_augment is "none"')
    # phase 2: everything, small learning rate, warmup then cosine decay
    epochs: int = setting(8, "phase 2: epochs of training everything")
    lr: float = setting(1e-4, "phase 2 peak learning rate")
    optimizer: str = setting("adamw", f"{' | '.join(OPTIMIZERS)} (rmsprop: the paper's)")
    momentum: float = setting(0.9, "sgd / rmsprop momentum")
    weight_decay: float = setting(0.05, "applied to conv/linear weights, never to norms or biases")
    schedule: str = setting("cosine", "cosine | step (x step_gamma every step_epochs) | constant")
    step_epochs: float = setting(
        2.4, "step schedule: decay interval (the paper: 0.97 every 2.4 epochs)"
    )
    step_gamma: float = setting(0.97, "step schedule: decay factor")
    warmup_epochs: float = setting(1.0, "linear warmup, in epochs")
    min_lr: float = setting(1e-6, "the learning rate cosine decay ends at")
    freeze_stages: int = setting(0, "keep the stem and this many early stages frozen in phase 2")
    augment: str = setting("light", "none | flip (no crop) | light | medium | heavy")
    magnitude: int | None = setting(None, "RandAugment magnitude for medium/heavy (default 9)")
    vflip: bool = setting(False, "also flip vertically (top/bottom-symmetric data)")
    mixup: float = setting(0.0, "mixup alpha (0 = off)")
    cutmix: float = setting(0.0, "cutmix alpha (0 = off)")
    label_smoothing: float = setting(0.1, "label smoothing of the cross-entropy")
    balance: str = setting(
        "none", "none | sampler (class-balanced sampling) | loss (class weights)"
    )
    ema: float = setting(0.0, "EMA decay of the weights (e.g. 0.999; 0 = off)")
    grad_clip: float = setting(0.0, "max gradient norm (0 = off)")
    accum_steps: int = setting(1, "gradient accumulation")
    progressive: str | None = setting(
        None, 'e.g. "stages=4,size=128:224,randaug=5:15,dropout=0.1:0.3"'
    )
    sync_bn: bool = setting(False, "SyncBatchNorm across ranks under torchrun")
    early_stop: int = setting(
        0,
        "stop phase 2 after this many epochs without improvement (0 = off)",
        resumable=True,
    )
    tta: bool = setting(
        False,
        "average test predictions over flips (vertical ones too with --vflip)",
        resumable=True,
    )
    # execution
    batch_size: int = setting(32, "training batch size (per process under torchrun)")
    eval_batch_size: int = setting(64, "evaluation batch size", resumable=True)
    amp: str = setting("auto", "auto (bf16 where fast) | none | bf16 | fp16 (CUDA)")
    channels_last: bool = setting(True, "channels-last memory format")
    device: str = setting("auto", "auto | cpu | cuda | cuda:N", resumable=True)
    threads: int = setting(0, "torch intra-op threads (0: leave as is)", resumable=True)
    out: str | None = setting(None, "run directory (default runs/<data>-<model>)")
    tensorboard: bool = setting(False, "also log to TensorBoard", resumable=True)
    progress: bool = setting(True, "progress bars", resumable=True)
    extra: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "free-form notes saved with the run"}
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        choices = {
            "augment": PRESETS,
            "head_augment": PRESETS,
            "balance": BALANCE,
            "amp": AMP,
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        checks = [
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
                raise ConfigError(message)

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


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """YAML/flag values to the field's type (ints for floats are fine; strings for numbers not)."""
    text = str(hint)
    if value is None:
        return None
    if "bool" in text and not isinstance(value, bool):
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name} expects true/false, got {value!r}")
    if "float" in text and not isinstance(value, bool):
        # YAML reads "1e-4" (no dot) as a string: accept it as the number it obviously is
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} expects a number, got {value!r}") from None
    if "int" in text and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name} expects a whole number, got {value!r}") from None
    return value


def merge_config(base: FinetuneConfig, overrides: dict[str, Any]) -> FinetuneConfig:
    """A new config with ``overrides`` applied; unknown keys are an error that lists the known."""
    known = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {unknown}; known keys: {', '.join(sorted(known))}"
        )
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
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    return merge_config(base or FinetuneConfig(), data)


def save_config(config: FinetuneConfig, path: str | os.PathLike[str]) -> Path:
    return write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
