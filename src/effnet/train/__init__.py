"""Training: the one loop (:func:`fit`), the fine-tuning and from-scratch workflows built on it,
resuming a run, and evaluating a checkpoint."""

from effnet.train.config import (
    FinetuneConfig,
    TrainConfig,
    load_config,
    merge_config,
    save_config,
)
from effnet.train.evaluation import evaluate_checkpoint
from effnet.train.finetuning import FinetuneResult, finetune, resume, train
from effnet.train.loop import (
    Epoch,
    EpochStats,
    EvalResult,
    TrainSetup,
    evaluate,
    fit,
    train_one_epoch,
)
from effnet.train.metrics import classification_report, confusion_matrix

__all__ = [
    "Epoch",
    "EpochStats",
    "EvalResult",
    "FinetuneConfig",
    "FinetuneResult",
    "TrainConfig",
    "TrainSetup",
    "classification_report",
    "confusion_matrix",
    "evaluate",
    "evaluate_checkpoint",
    "finetune",
    "fit",
    "load_config",
    "merge_config",
    "resume",
    "save_config",
    "train",
    "train_one_epoch",
]
