"""What a run directory holds, read back for the report, and the predictions it lacks.

A run directory (``effnet finetune`` / ``effnet train``) holds ``config.yaml`` (the resolved
config), ``data.json`` (the split record and the skipped files), ``metrics.jsonl`` (one row per
epoch), ``report.json`` (test metrics and timings) and ``best.safetensors`` /
``last.safetensors``. Every file is optional here: a directory written by ``effnet evaluate``
has none of them and the report simply says what is missing.

When a split's predictions were not saved (a run from before the report existed), they are
recomputed from the checkpoint on exactly the images the run recorded in ``data.json``.
A fine-tuning run saves its own at its end (``effnet.train.finetuning``), through the same
:func:`calibration_sample` for the training split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from effnet.errors import RunDirError
from effnet.report.predictions import Predictions

__all__ = [
    "CALIBRATION_SAMPLES",
    "RunFiles",
    "calibration_sample",
    "read_run",
    "recompute_predictions",
]

CALIBRATION_SAMPLES = 1000
"""Most images of the *training* split a temperature is fitted on (when a run has no
validation split): one temperature is well determined by a few hundred predictions, and the
training split of a large run would otherwise cost a full extra pass."""


def calibration_sample(part: Any, limit: int = CALIBRATION_SAMPLES) -> Any:
    """At most ``limit`` images of the labelled set ``part``: a seeded sample kept in the set's
    order (the same images every time for the same set)."""
    from effnet.data import LabelledSet

    if len(part) <= limit:
        return part
    keep = torch.randperm(len(part), generator=torch.Generator().manual_seed(0))
    chosen = sorted(keep[:limit].tolist())
    return LabelledSet(tuple(part.samples[i] for i in chosen), part.classes, part.root)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class RunFiles:
    """The files of a run directory, parsed (empty where a file is missing or unreadable)."""

    run_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    checkpoint_meta: dict[str, Any] = field(default_factory=dict)

    @property
    def split_record(self) -> dict[str, Any]:
        record = self.data.get("split")
        return record if isinstance(record, dict) else {}

    @property
    def recorded_splits(self) -> list[str]:
        return list(self.split_record.get("splits", {}))

    @property
    def stored_temperature(self) -> float | None:
        """The temperature saved with the checkpoint (metadata key ``temperature``), if any."""
        from effnet.weights.native import stored_temperature

        return stored_temperature(self.checkpoint_meta)


def read_run(
    run_dir: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None = None
) -> RunFiles:
    """Read what ``run_dir`` holds; raises :class:`RunDirError` when it is not a directory.

    ``checkpoint``: the weights file to describe instead of the directory's own best/last.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise RunDirError(
            f"{root} is not a directory; pass a run directory (e.g. runs/NAME, the --out of "
            "effnet finetune)"
        )
    run = RunFiles(root)
    config = root / "config.yaml"
    if config.is_file():
        loaded = yaml.safe_load(config.read_text())
        run.config = loaded if isinstance(loaded, dict) else {}
    run.data = _read_json(root / "data.json")
    run.summary = _read_json(root / "report.json") or _read_json(root / "eval_report.json")
    metrics = root / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a killed run
            if isinstance(row, dict):
                run.history.append(row)
    from effnet.weights.io import read_metadata

    candidates = [root / "best.safetensors", root / "last.safetensors"]
    if checkpoint is not None:
        from effnet.weights.native import checkpoint_in_run

        path = Path(checkpoint)
        candidates = [checkpoint_in_run(path) if path.is_dir() else path]
    for path in candidates:
        if path.is_file():
            run.checkpoint = path
            run.checkpoint_meta = read_metadata(path)
            break
    return run


def load_run_model(run: RunFiles, device: str | torch.device = "cpu") -> nn.Module:
    """The run's best checkpoint (the last one without a validation split), in eval mode."""
    if run.checkpoint is None:
        raise RunDirError(
            f"{run.run_dir} holds no best.safetensors or last.safetensors; the report needs "
            "the model to recompute predictions and draw class-activation maps"
        )
    from effnet.weights.native import load_checkpoint

    model, _ = load_checkpoint(run.checkpoint)
    return model.to(device).eval()


def recompute_predictions(
    run: RunFiles,
    splits: Sequence[str],
    model: nn.Module | None = None,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    save: bool = True,
) -> dict[str, Predictions]:
    """Run the checkpoint over the images ``data.json`` recorded for ``splits`` (with the run's
    test-time augmentation, as its report was made) and, with ``save``, store the predictions
    next to the run. Splits the record does not hold are left out.

    A ``"train"`` split (used only for calibration, which needs the model's own one-view
    logits) runs without TTA on at most :data:`CALIBRATION_SAMPLES` images
    (:func:`calibration_sample`).
    """
    from effnet.data import eval_transform, recorded_splits
    from effnet.export.fold import optimize
    from effnet.train.distributed import DistContext
    from effnet.train.loaders import make_loader
    from effnet.train.loop import evaluate

    # the one place the report reads which images a run held out
    source = recorded_splits(run.run_dir) if run.split_record else None
    if source is None:
        raise RunDirError(
            f"{run.run_dir} has no data.json, so the images of its splits are unknown; pass "
            "the predictions to write_report (save_predictions) or point it at a run directory"
        )
    parts = {name: getattr(source, name, None) for name in splits}
    parts = {name: part for name, part in parts.items() if part is not None and len(part)}
    if not parts:
        return {}
    model = load_run_model(run, device) if model is None else model
    fast = optimize(model, channels_last=False, check=False)  # BatchNorm folded: the fast copy
    ctx = DistContext(device=next(model.parameters()).device)
    tta = bool(run.config.get("tta"))
    vflip = tta and bool(run.config.get("vflip"))
    out: dict[str, Predictions] = {}
    for name, part in parts.items():
        views = tta and name != "train"
        if name == "train":
            part = calibration_sample(part)
        loader = make_loader(part, eval_transform(model), ctx, batch_size=batch_size, workers=0)
        result = evaluate(
            fast, loader, ctx, tta=views, tta_vflip=views and vflip, desc=f"report {name}"
        )
        paths = [str(p) for p, _ in part.samples]
        pred = Predictions.create(
            name, paths, result.targets, result.logits, part.classes, result.view_logits
        )
        if save:
            pred.save(run.run_dir)
        out[name] = pred
    return out
