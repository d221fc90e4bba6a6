"""A split's predictions, saved next to a run: ``predictions_<split>.npz``.

One compressed NumPy archive per split, readable without pickle: ``logits`` (N, C) float32,
``targets`` (N,) int64, ``paths`` (N,) text and ``classes`` (C,) text. The training code writes
one for the evaluated split and one for the split the temperature is fitted on; the report is
then drawn without running the model over the data again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from effnet.errors import RunDirError

__all__ = ["Predictions", "load_predictions", "predictions_path", "save_predictions"]

_SPLIT = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Predictions:
    """Logits and true labels of one split, in a fixed order, with the images' paths."""

    split: str
    paths: tuple[str, ...]
    targets: torch.Tensor
    """(N,) int64 class indices into :attr:`classes`."""
    logits: torch.Tensor
    """(N, C) float32; log-probabilities also work (what test-time augmentation returns)."""
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        n, c = len(self.paths), len(self.classes)
        if self.logits.ndim != 2 or self.logits.shape != (n, c) or self.targets.shape != (n,):
            raise ValueError(
                f"predictions for {self.split!r}: expected {n} paths, targets of shape ({n},) and "
                f"logits of shape ({n}, {c}) for {c} classes; got targets "
                f"{tuple(self.targets.shape)} and logits {tuple(self.logits.shape)}"
            )
        if n and (int(self.targets.min()) < 0 or int(self.targets.max()) >= c):
            raise ValueError(
                f"predictions for {self.split!r}: targets must be class indices in [0, {c})"
            )

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(1)

    def probs(self, temperature: float = 1.0) -> torch.Tensor:
        """``softmax(logits / temperature)``."""
        return (self.logits.float() / temperature).softmax(1)

    @classmethod
    def create(
        cls,
        split: str,
        paths: Sequence[str | os.PathLike[str]],
        targets: Sequence[int] | torch.Tensor,
        logits: torch.Tensor,
        classes: Sequence[str],
    ) -> Predictions:
        """From what an evaluation returns (tensors on any device, paths as ``Path``)."""
        return cls(
            split,
            tuple(str(p) for p in paths),
            torch.as_tensor(targets).detach().to("cpu", torch.long).reshape(-1),
            torch.as_tensor(logits).detach().to("cpu", torch.float32),
            tuple(classes),
        )


def predictions_path(run_dir: str | os.PathLike[str], split: str) -> Path:
    if not _SPLIT.match(split):
        raise ValueError(f"a split name is letters, digits, '_', '-' or '.', got {split!r}")
    return Path(run_dir) / f"predictions_{split}.npz"


def save_predictions(
    run_dir: str | os.PathLike[str],
    split: str,
    paths: Sequence[str | os.PathLike[str]],
    targets: Sequence[int] | torch.Tensor,
    logits: torch.Tensor,
    classes: Sequence[str],
) -> Path:
    """Write ``run_dir/predictions_<split>.npz`` (atomically) and return its path.

    ``paths[i]`` is the image whose true class is ``targets[i]`` and whose logits (or
    log-probabilities) are ``logits[i]``; ``classes`` names the columns.
    """
    pred = Predictions.create(split, paths, targets, logits, classes)
    path = predictions_path(run_dir, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            logits=pred.logits.numpy(),
            targets=pred.targets.numpy(),
            paths=np.array(pred.paths, dtype=str),
            classes=np.array(pred.classes, dtype=str),
        )
    tmp.replace(path)
    return path


def load_predictions(run_dir: str | os.PathLike[str], split: str) -> Predictions | None:
    """The predictions :func:`save_predictions` wrote for ``split``, or None if there are none."""
    path = predictions_path(run_dir, split)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return Predictions(
                split,
                tuple(str(p) for p in data["paths"].tolist()),
                torch.from_numpy(data["targets"].astype(np.int64)),
                torch.from_numpy(data["logits"].astype(np.float32)),
                tuple(str(c) for c in data["classes"].tolist()),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise RunDirError(
            f"{path} is not a predictions file effnet wrote ({exc}); delete it and run "
            "`effnet report` again to recompute it"
        ) from exc
