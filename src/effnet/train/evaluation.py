"""``evaluate_checkpoint``: the fine-tuning report (accuracy, balanced accuracy, macro-F1,
per-class precision/recall, confusion matrix, calibration) for any checkpoint on any labelled
data; with ``out``, also the web page ``report.html`` there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from effnet.data import LabelledSet, SourceSplits, eval_transform, load_source, recorded_splits
from effnet.errors import BadDataError, ConfigError, RunDirError, WeightsError
from effnet.files import write_json
from effnet.train.checkpoint import STATE_FILE
from effnet.train.distributed import init_distributed
from effnet.train.loaders import make_loader
from effnet.train.loop import EvalResult, evaluate
from effnet.train.metrics import classification_report
from effnet.train.run import inference_copy
from effnet.weights.native import load_checkpoint, stored_temperature

__all__ = ["SPLITS", "evaluate_checkpoint"]

SPLITS = ("auto", "all", "train", "val", "test")


def _select(splits: SourceSplits, which: str) -> LabelledSet:
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    if which == "all":
        samples = tuple(s for part in parts.values() if part is not None for s in part.samples)
        return LabelledSet(samples, splits.classes, splits.train.root)
    part = parts[which]
    if part is None:
        raise ConfigError(f"the data has no {which} split; use --split all or another split")
    return part


def _relabel(subset: LabelledSet, data_classes: tuple[str, ...], classes: list[str]) -> LabelledSet:
    """``subset`` labelled with the model's class indices (matched by name)."""
    unknown = sorted(set(data_classes) - set(classes))
    if unknown:
        raise BadDataError(
            f"the data has classes the model does not know: {unknown}; the model's classes are "
            f"{classes}. Evaluate on data labelled with the model's classes."
        )
    remap = [classes.index(name) for name in data_classes]
    return LabelledSet(tuple((p, remap[y]) for p, y in subset.samples), tuple(classes), subset.root)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str,
    *,
    model: str | None = None,
    label_mode: str | None = None,
    split: str = "auto",
    batch_size: int = 64,
    tta: bool = False,
    workers: int = -1,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``data`` and return (and optionally write) the report.

    ``split="auto"``: when ``data`` is what the checkpoint's run trained on (its ``data.json``
    says so), that run's own test split, file for file (so no training image leaks in);
    otherwise every image. Class names are matched by name: the data may order them
    differently or hold fewer classes. ``model``: the network of a state dict without effnet
    metadata (as for :func:`effnet.weights.load_checkpoint`).

    ``report["calibration"]``: the temperature stored with the checkpoint (by its fine-tuning
    run; None for a checkpoint without one) and the expected calibration error of the model's
    own probabilities before and after it. ``out``: ``eval_report.json``,
    ``eval_confusion.png``, ``predictions_<split>.npz`` and ``report.html`` (the run report's
    page for this evaluation) in that folder.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    for name, value, least in (("batch_size", batch_size, 1), ("workers", workers, -1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{name} must be a whole number >= {least}, got {value!r}")
    if out is not None and any((Path(out) / n).is_file() for n in ("config.yaml", STATE_FILE)):
        raise RunDirError(
            f"--out {out} is a run directory: this evaluation's report.html and predictions "
            f"would replace the run's own; write them elsewhere (e.g. --out {Path(out) / 'eval'})"
        )
    path = Path(checkpoint)
    # ``model`` names the network of a foreign state dict (--model); from here on, the model
    model, meta = load_checkpoint(path, model=model)
    temperature = stored_temperature(meta)
    classes = list(model.class_names or [])
    if not classes:
        raise WeightsError(
            f"{path} has no class names in its metadata, so its outputs cannot be matched to "
            f"the data's labels; evaluate a checkpoint of effnet finetune, or set "
            f"model.class_names and save it with effnet.weights.save_model"
        )
    splits = recorded_splits(path, source=data, label_mode=label_mode)
    if split == "auto":
        split = "test" if splits is not None else "all"
    if splits is None:
        splits = load_source(data, label_mode=label_mode)
    subset = _relabel(_select(splits, split), splits.classes, classes)
    ctx = init_distributed("auto")
    model.to(ctx.device)
    loader = make_loader(subset, eval_transform(model), ctx, batch_size=batch_size, workers=workers)
    result = evaluate(
        inference_copy(model, channels_last=False), loader, ctx, tta=tta, progress=progress
    )
    report = classification_report(result.targets, result.preds, classes)
    report.update(
        loss=result.loss,
        checkpoint=str(path),
        data=data,
        label_mode=splits.label_mode,
        split=split,
        num_skipped_images=splits.num_skipped,
        tta=tta,
        calibration=_calibration(result, temperature),
    )
    if out is not None:
        _write(Path(out), report, classes, f"{data} ({split}) confusion matrix")
        try:
            report["report_html"] = str(_page(Path(out), path, model, subset, split, result))
        except ImportError:  # the optional report dependencies (matplotlib, captum)
            pass
        else:
            write_json(Path(out) / "eval_report.json", report)
    return report


def _calibration(result: EvalResult, temperature: float | None) -> dict[str, Any]:
    """ECE of the model's own probabilities (one view, even with TTA: what predict serves),
    raw and divided by the checkpoint's temperature."""
    from effnet.report import expected_calibration_error

    own = result.logits if result.view_logits is None else result.view_logits
    calibrated = None
    if temperature is not None:
        calibrated = expected_calibration_error((own / temperature).softmax(1), result.targets)
    return {
        "temperature": temperature,
        "ece": expected_calibration_error(own.softmax(1), result.targets),
        "ece_calibrated": calibrated,
    }


def _page(
    out_dir: Path,
    checkpoint: Path,
    model: nn.Module,
    subset: LabelledSet,
    split: str,
    result: EvalResult,
) -> Path:
    """``out_dir/report.html`` from this evaluation's predictions (saved beside it)."""
    from effnet.report import Predictions, save_predictions, write_report

    paths = [str(p) for p, _ in subset.samples]
    args = (paths, result.targets, result.logits, subset.classes, result.view_logits)
    save_predictions(out_dir, split, *args)
    return write_report(
        out_dir,
        predictions=[Predictions.create(split, *args)],
        model=model,
        split=split,
        recompute=False,
        checkpoint=checkpoint,
    )


def _write(out_dir: Path, report: dict[str, Any], classes: list[str], title: str) -> None:
    write_json(out_dir / "eval_report.json", report)
    try:
        from effnet.train.plots import plot_confusion

        plot_confusion(
            report["confusion_matrix"], classes, out_dir / "eval_confusion.png", title=title
        )
    except ImportError:
        pass
