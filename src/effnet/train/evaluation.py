"""``evaluate_checkpoint``: the fine-tuning report (accuracy, balanced accuracy, macro-F1,
per-class precision/recall, confusion matrix) for any checkpoint on any labelled data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from effnet.data import LabelledSet, SplitFractions, eval_transform, load_source
from effnet.train.distributed import init_distributed
from effnet.train.loaders import make_loader
from effnet.train.loop import evaluate
from effnet.train.metrics import classification_report
from effnet.weights.native import load_checkpoint

__all__ = ["evaluate_checkpoint"]

SPLITS = ("auto", "all", "train", "val", "test")


def _run_split_settings(checkpoint: Path) -> dict[str, Any]:
    """The data settings of the fine-tuning run a checkpoint came from (if it is in a run dir)."""
    run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
    config = run_dir / "config.yaml"
    if config.is_file():
        data = yaml.safe_load(config.read_text()) or {}
        return {k: data.get(k) for k in ("data", "label_mode", "split", "seed")}
    return {}


def _select(splits: Any, which: str) -> LabelledSet:
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    if which == "all":
        samples = tuple(s for part in parts.values() if part is not None for s in part.samples)
        return LabelledSet(samples, splits.classes, splits.train.root)
    part = parts[which]
    if part is None:
        raise ValueError(f"the data has no {which} split; use --split all or another split")
    return part


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str,
    *,
    label_mode: str | None = None,
    split: str = "auto",
    batch_size: int = 64,
    tta: bool = False,
    workers: int = -1,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``data`` and return (and optionally write) the report.

    ``split="auto"``: when ``data`` is what the checkpoint's run trained on, its held-out test
    split (same seed and fractions, so no training image leaks in); otherwise every image.
    Class names are matched by name: the data may order them differently or hold fewer classes.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(checkpoint)
    model, _ = load_checkpoint(path)
    classes = list(model.class_names or [])
    if not classes:
        raise ValueError(f"{path} has no class names in its metadata; it is not a fine-tuned model")
    run = _run_split_settings(path)
    same_data = run.get("data") == data and run.get("label_mode") == label_mode
    if split == "auto":
        split = "test" if same_data else "all"
    fractions = SplitFractions.parse(run["split"]) if same_data and run.get("split") else None
    seed = int(run.get("seed") or 0) if same_data else 0
    splits = load_source(data, label_mode=label_mode, fractions=fractions, seed=seed)
    subset = _select(splits, split)
    unknown = sorted(set(splits.classes) - set(classes))
    if unknown:
        raise ValueError(
            f"the data has classes the model does not know: {unknown}; the model's classes are "
            f"{classes}. Evaluate on data labelled with the model's classes."
        )
    remap = [classes.index(name) for name in splits.classes]
    relabelled = LabelledSet(
        tuple((p, remap[y]) for p, y in subset.samples), tuple(classes), subset.root
    )
    ctx = init_distributed("auto")
    model.to(ctx.device)
    loader = make_loader(
        relabelled, eval_transform(model), ctx, batch_size=batch_size, train=False, workers=workers
    )
    result = evaluate(model, loader, ctx, tta=tta, progress=progress)
    report = classification_report(result.targets, result.preds, classes)
    report.update(
        loss=result.loss,
        checkpoint=str(path),
        data=data,
        label_mode=label_mode,
        split=split,
        num_skipped_images=splits.num_skipped,
        tta=tta,
    )
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "eval_report.json").write_text(json.dumps(report, indent=2) + "\n")
        try:
            from effnet.train.plots import plot_confusion

            plot_confusion(
                report["confusion_matrix"],
                classes,
                out_dir / "eval_confusion.png",
                title=f"{data} ({split}) confusion matrix",
            )
        except ImportError:
            pass
    return report
