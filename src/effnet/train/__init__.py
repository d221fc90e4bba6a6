"""Training: plain functions for an epoch and an evaluation, and the workflows built on them."""

from effnet.train.config import (
    FinetuneConfig,
    TrainConfig,
    load_config,
    merge_config,
    save_config,
)
from effnet.train.finetuning import FinetuneResult, finetune, train
from effnet.train.loop import EpochStats, EvalResult, evaluate, train_one_epoch
from effnet.train.metrics import classification_report, confusion_matrix

__all__ = [
    "EpochStats",
    "EvalResult",
    "FinetuneConfig",
    "FinetuneResult",
    "TrainConfig",
    "classification_report",
    "confusion_matrix",
    "evaluate",
    "finetune",
    "load_config",
    "merge_config",
    "save_config",
    "train",
    "train_one_epoch",
]
