"""A split's predictions, saved next to a run: ``predictions_<split>.npz``.

One compressed NumPy archive per split, readable without pickle: ``logits`` (N, C) float32,
``targets`` (N,) int64, ``paths`` (N,) text and ``classes`` (C,) text; with test-time
augmentation also ``view_logits`` (N, C), the unflipped image's own logits. The training code
writes one for the evaluated split and one for the split the temperature is fitted on; the
report is then drawn without running the model over the data again.

Two kinds of output, and which one each number uses: ``logits`` are what the run scored with
(with TTA, the log of the mean softmax over the flips), so accuracy, the confusion matrix and
the gallery match ``report.json``; calibration measures the model's own probabilities
(:attr:`Predictions.model_logits`, one view), because those are what ``effnet predict`` and an
exported model serve and what the stored temperature is applied to.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from effnet.errors import RunDirError
from effnet.files import atomic_write

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
    view_logits: torch.Tensor | None = None
    """(N, C) float32 with test-time augmentation: the unflipped image's own logits."""

    def __post_init__(self) -> None:
        n, c = len(self.paths), len(self.classes)
        if self.logits.ndim != 2 or self.logits.shape != (n, c) or self.targets.shape != (n,):
            raise ValueError(
                f"predictions for {self.split!r}: expected {n} paths, targets of shape ({n},) and "
                f"logits of shape ({n}, {c}) for {c} classes; got targets "
                f"{tuple(self.targets.shape)} and logits {tuple(self.logits.shape)}"
            )
        if self.view_logits is not None and self.view_logits.shape != self.logits.shape:
            raise ValueError(
                f"predictions for {self.split!r}: view_logits must have the shape of logits "
                f"({n}, {c}), got {tuple(self.view_logits.shape)}"
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

    @property
    def model_logits(self) -> torch.Tensor:
        """The model's own logits, one view: what calibration measures and the temperature
        divides (``view_logits`` with TTA, else ``logits``)."""
        return self.logits if self.view_logits is None else self.view_logits

    def probs(self, temperature: float = 1.0) -> torch.Tensor:
        """``softmax(logits / temperature)``: the probabilities the run scored with."""
        return (self.logits.float() / temperature).softmax(1)

    def model_probs(self, temperature: float = 1.0) -> torch.Tensor:
        """``softmax(model_logits / temperature)``: what ``effnet predict`` serves."""
        return (self.model_logits.float() / temperature).softmax(1)

    @classmethod
    def create(
        cls,
        split: str,
        paths: Sequence[str | os.PathLike[str]],
        targets: Sequence[int] | torch.Tensor,
        logits: torch.Tensor,
        classes: Sequence[str],
        view_logits: torch.Tensor | None = None,
    ) -> Predictions:
        """From what an evaluation returns (tensors on any device, paths as ``Path``)."""
        return cls(
            split,
            tuple(str(p) for p in paths),
            torch.as_tensor(targets).detach().to("cpu", torch.long).reshape(-1),
            _floats(logits),
            tuple(classes),
            None if view_logits is None else _floats(view_logits),
        )

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """Write ``run_dir/predictions_<split>.npz`` (atomically) and return its path."""
        arrays = {
            "logits": self.logits.numpy(),
            "targets": self.targets.numpy(),
            "paths": np.array(self.paths, dtype=str),
            "classes": np.array(self.classes, dtype=str),
        }
        if self.view_logits is not None:
            arrays["view_logits"] = self.view_logits.numpy()
        path = predictions_path(run_dir, self.split)
        atomic_write(path, lambda tmp: _savez(tmp, arrays))
        return path


def _floats(logits: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(logits).detach().to("cpu", torch.float32).contiguous()


def predictions_path(run_dir: str | os.PathLike[str], split: str) -> Path:
    if not _SPLIT.match(split):
        raise ValueError(f"a split name is letters, digits, '_', '-' or '.', got {split!r}")
    return Path(run_dir) / f"predictions_{split}.npz"


def save_predictions(run_dir: str | os.PathLike[str], split: str, *columns: Any, **kw: Any) -> Path:
    """Write ``run_dir/predictions_<split>.npz`` (atomically) and return its path.

    ``columns``: :meth:`Predictions.create`'s ``paths, targets, logits, classes`` and optionally
    ``view_logits``. ``paths[i]`` is the image whose true class is ``targets[i]`` and whose
    logits (or log-probabilities) are ``logits[i]``; ``classes`` names the columns.
    ``view_logits``: with test-time augmentation, the unflipped image's own logits
    (``EvalResult.view_logits``).
    """
    return Predictions.create(split, *columns, **kw).save(run_dir)


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to a name
        np.savez_compressed(f, **arrays)


def load_predictions(run_dir: str | os.PathLike[str], split: str) -> Predictions | None:
    """The predictions :func:`save_predictions` wrote for ``split``, or None if there are none."""
    path = predictions_path(run_dir, split)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            view = data["view_logits"] if "view_logits" in data.files else None
            return Predictions(
                split,
                tuple(str(p) for p in data["paths"].tolist()),
                torch.from_numpy(data["targets"].astype(np.int64)),
                torch.from_numpy(data["logits"].astype(np.float32)),
                tuple(str(c) for c in data["classes"].tolist()),
                None if view is None else torch.from_numpy(view.astype(np.float32)),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise RunDirError(
            f"{path} is not a predictions file effnet wrote ({exc}); delete it and run "
            "`effnet report` again to recompute it"
        ) from exc
