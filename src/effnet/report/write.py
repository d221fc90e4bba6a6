"""``write_report(run_dir)``: the run report as one self-contained web page, ``report.html``."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from effnet._version import __version__
from effnet.files import write_text
from effnet.report.calibration import MIN_SAMPLES, fit_temperature, reliability
from effnet.report.figures import confusion_figure, curves_figure, png_bytes, reliability_figure
from effnet.report.html import esc, page
from effnet.report.predictions import Predictions, load_predictions
from effnet.report.run import RunFiles, load_run_model, read_run, recompute_predictions
from effnet.report.sections import (
    GalleryItem,
    calibration_section,
    config_section,
    gallery_section,
    per_class_section,
    plot_section,
    split_section,
    summary_block,
)

__all__ = ["REPORT_FILE", "write_report"]

REPORT_FILE = "report.html"
SPLITS = ("test", "val", "train")
NAV = (
    ("curves", "curves"),
    ("confusion", "confusion"),
    ("per-class", "per class"),
    ("gallery", "gallery"),
    ("calibration", "calibration"),
    ("config", "config"),
    ("split", "split"),
)


def _as_dict(predictions: Mapping[str, Predictions] | Iterable[Predictions] | None) -> dict:
    if predictions is None:
        return {}
    if isinstance(predictions, Mapping):
        return dict(predictions)
    return {p.split: p for p in predictions}


def _known(run: RunFiles, preds: Mapping[str, Predictions]) -> list[str]:
    """Splits that have predictions or can get them (recorded in data.json)."""
    return list(dict.fromkeys([*preds, *run.recorded_splits]))


def _choose_split(run: RunFiles, preds: Mapping[str, Predictions], wanted: str | None) -> str:
    known = _known(run, preds)
    if wanted:
        return wanted
    for name in SPLITS:
        if name in known:
            return name
    return known[0] if known else "test"


def _calibration_split(run: RunFiles, preds: Mapping[str, Predictions], evaluated: str) -> str:
    """Validation when it is not the evaluated split, else training (the issue's rule)."""
    known = _known(run, preds)
    for name in ("val", "train"):
        if name != evaluated and name in known:
            return name
    return ""


def _metrics(pred: Predictions) -> dict[str, Any]:
    # the training room's metrics, so the page and report.json agree by construction
    from effnet.train.metrics import classification_report

    return classification_report(pred.targets, pred.preds, list(pred.classes))


def _gallery(
    pred: Predictions, model: nn.Module | None, temperature: float, count: int
) -> tuple[list[GalleryItem], list[GalleryItem], str]:
    from effnet.data import UnreadableImageError, load_image

    probs = pred.probs()
    calibrated = pred.model_probs(temperature) if temperature != 1.0 else None
    conf, chosen = probs.max(1)
    wrong = (chosen != pred.targets).nonzero().flatten().tolist()
    right = (chosen == pred.targets).nonzero().flatten().tolist()
    mistakes = sorted(wrong, key=lambda i: (-float(conf[i]), i))[:count]
    unsure = sorted(right, key=lambda i: (float(conf[i]), i))[:count]
    picks = mistakes + unsure
    pictures: dict[int, Any] = {}
    for i in picks:
        with contextlib.suppress(UnreadableImageError, OSError):  # a moved file: no picture
            pictures[i] = load_image(pred.paths[i])
    present = [i for i in picks if i in pictures]
    views: dict[int, Any] = {}
    overlays: dict[int, Any] = {}
    note = (
        "Each card: the image as the model saw it (after its resize and crop) and the "
        "Grad-CAM map of the predicted class on the model's last feature map (red: what "
        "spoke for the prediction). Probabilities are the model's own softmax"
        + (" averaged over the test-time flips" if pred.view_logits is not None else "")
        + (
            "; calibrated ones apply the temperature below"
            + (" to the unflipped image's logits." if pred.view_logits is not None else ".")
            if calibrated is not None
            else "."
        )
    )
    if model is not None and present:
        from effnet.report.cam import explain_images, model_view

        images = [pictures[i] for i in present]
        try:
            found = explain_images(model, images, [int(chosen[i]) for i in present])
            for i, ex in zip(present, found):
                views[i], overlays[i] = ex.image, ex.overlay()
        except ImportError as exc:
            note += f" No activation maps: {exc}."
            views = dict(zip(present, model_view(model, images)))
    elif present:
        note += " No model to draw activation maps with: the pictures are shown as stored."
        for i in present:
            thumb = pictures[i].copy()
            thumb.thumbnail((224, 224))
            views[i] = np.asarray(thumb)

    def item(i: int) -> GalleryItem:
        return GalleryItem(
            path=pred.paths[i],
            true=pred.classes[int(pred.targets[i])],
            pred=pred.classes[int(chosen[i])],
            prob=float(conf[i]),
            calibrated=None if calibrated is None else float(calibrated[i, chosen[i]]),
            picture=views.get(i),
            overlay=overlays.get(i),
        )

    return [item(i) for i in mistakes], [item(i) for i in unsure], note


def write_report(
    run_dir: str | os.PathLike[str],
    *,
    predictions: Mapping[str, Predictions] | Iterable[Predictions] | None = None,
    model: nn.Module | None = None,
    temperature: float | None = None,
    split: str | None = None,
    wall_seconds: float | None = None,
    gallery: int = 12,
    recompute: bool = True,
    device: str | torch.device = "cpu",
    checkpoint: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    ``predictions``: per split (``Predictions`` objects or a split -> Predictions mapping);
    splits not given are read from ``predictions_<split>.npz`` in ``run_dir``, and, with
    ``recompute``, the missing ones are computed from the run's checkpoint on the images its
    ``data.json`` recorded (and saved for next time). ``split`` is the split the page is about
    (default: test, else val, else train).

    ``model`` draws the activation maps (default: the run's best checkpoint). ``temperature``
    is the fitted temperature (default: the checkpoint's stored one, else fitted here on the
    validation split, or the training split when the evaluated split is the validation one or
    there is none). ``wall_seconds`` defaults to ``report.json``'s. ``gallery`` images of each
    kind (the most confident mistakes, the least confident correct predictions) get maps.
    ``checkpoint``: the weights the predictions came from, when they are not the directory's
    own ``best``/``last`` (``effnet evaluate --out DIR``): its model name and stored
    temperature are used.

    Calibration is measured on the model's own probabilities (one view, what ``effnet
    predict`` and an exported model serve: :attr:`Predictions.model_logits`), even when the
    run's accuracy used test-time augmentation.
    """
    start = time.perf_counter()
    run = read_run(run_dir, checkpoint=checkpoint)
    preds = _gather(run, predictions)
    evaluated = _choose_split(run, preds, split)
    temperature, fitted_note = _given_temperature(run, preds, evaluated, temperature)
    cal_split = _calibration_split(run, preds, evaluated) if temperature is None else ""
    missing = [s for s in dict.fromkeys([evaluated, cal_split]) if s and s not in preds]
    if missing and recompute and run.checkpoint is not None and run.split_record:
        model = load_run_model(run, device) if model is None else model
        preds.update(recompute_predictions(run, missing, model, device=device))
    ev = preds.get(evaluated)
    if model is None and run.checkpoint is not None and gallery > 0 and _filled(ev):
        model = load_run_model(run, device)
    metrics = _metrics(ev) if _filled(ev) else None
    if temperature is None:
        temperature, fitted_note = _fitted_temperature(preds, cal_split)
    sections = _sections(run, preds, evaluated, metrics, model, temperature, fitted_note, gallery)
    text = _page(run, evaluated, metrics, "".join(sections), wall_seconds, start)
    return write_text(run.run_dir / REPORT_FILE, text)


def _filled(pred: Predictions | None) -> bool:
    return pred is not None and len(pred) > 0


def _gather(
    run: RunFiles, predictions: Mapping[str, Predictions] | Iterable[Predictions] | None
) -> dict[str, Predictions]:
    """The predictions given, then those saved in the run directory for the other splits."""
    preds = _as_dict(predictions)
    saved = [p.stem.removeprefix("predictions_") for p in run.run_dir.glob("predictions_*.npz")]
    for name in sorted(set(saved) | set(run.recorded_splits)):
        if name not in preds:
            found = load_predictions(run.run_dir, name)
            if found is not None:
                preds[name] = found
    return preds


def _given_temperature(
    run: RunFiles, preds: Mapping[str, Predictions], evaluated: str, temperature: float | None
) -> tuple[float | None, str]:
    """The temperature given, else the one stored with the checkpoint (None: fit one), and the
    note that says where it comes from."""
    if temperature is not None:
        return temperature, "Given by the training run."
    temperature = run.stored_temperature
    if temperature is None:
        return None, ""
    note = "Stored with the checkpoint." if temperature else ""
    fitted_on = preds.get(_calibration_split(run, preds, evaluated) or "")
    if fitted_on is not None and len(fitted_on):
        note = (
            f"Fitted at the end of the run on its {fitted_on.split} split "
            f"({len(fitted_on):,} images) and stored with the checkpoint: effnet predict, "
            "effnet evaluate and exported models apply it."
        )
    return temperature, note


def _fitted_temperature(preds: Mapping[str, Predictions], cal_split: str) -> tuple[float, str]:
    """The temperature fitted here on ``cal_split`` (1 without predictions), and its note."""
    cal = preds.get(cal_split) if cal_split else None
    if cal is None or not len(cal):
        return 1.0, "No held-out predictions to fit a temperature on: T = 1."
    temperature = fit_temperature(cal.model_logits, cal.targets, seen=cal_split == "train")
    note = f"Fitted on the {cal_split} split ({len(cal):,} images)."
    if cal_split == "train":
        note += " The network trained on these images, so T may only soften (T >= 1)."
    if temperature == 1.0:
        note += (
            f" T stays 1: fewer than {MIN_SAMPLES} predictions, not a single mistake, "
            "or logits that do not depend on T."
        )
    return temperature, note


def _sections(
    run: RunFiles,
    preds: Mapping[str, Predictions],
    evaluated: str,
    metrics: dict[str, Any] | None,
    model: nn.Module | None,
    temperature: float,
    fitted_note: str,
    gallery: int,
) -> list[str]:
    """The page's sections, in the order of :data:`NAV`."""
    ev = preds.get(evaluated)
    curves = png_bytes(curves_figure(run.history)) if run.history else None
    sections = [
        plot_section("curves", "Learning curves", curves, "learning curves", "No metrics.jsonl.")
    ]
    confusion = (
        png_bytes(confusion_figure(metrics["confusion_matrix"], ev.classes))
        if metrics and ev is not None
        else None
    )
    sections.append(
        plot_section(
            "confusion",
            f"Confusion matrix ({evaluated})",
            confusion,
            "confusion matrices, counts and row-normalised",
            "No predictions.",
        )
    )
    sections.append(per_class_section(metrics, evaluated))
    if ev is not None and len(ev):
        mistakes, unsure, note = _gallery(ev, model, temperature, gallery)
    else:
        mistakes, unsure, note = [], [], "No predictions."
    sections.append(gallery_section(mistakes, unsure, note))
    sections.append(_calibration(ev if _filled(ev) else None, temperature, fitted_note, evaluated))
    sections.append(
        config_section(run.config, str(run.checkpoint) if run.checkpoint is not None else "")
    )
    counts = {
        name: torch.bincount(p.targets, minlength=len(p.classes)).tolist()
        for name, p in preds.items()
    }
    data = run.data or {"classes": list(ev.classes) if ev is not None else []}
    sections.append(split_section(data, counts))
    return sections


def _calibration(
    ev: Predictions | None, temperature: float, fitted_note: str, evaluated: str
) -> str:
    """Reliability before and after temperature scaling, on the model's own probabilities."""
    if ev is None:
        return calibration_section(None, None, None, temperature, fitted_note, evaluated)
    before = reliability(ev.model_probs(), ev.targets)
    after = reliability(ev.model_probs(temperature), ev.targets)
    if ev.view_logits is not None:
        fitted_note += (
            " Measured on the model's own probabilities (the unflipped image, as effnet "
            "predict and exported models serve them); the accuracy above averages the "
            "test-time flips."
        )
    png = png_bytes(reliability_figure(before, after, temperature))
    return calibration_section(png, before, after, temperature, fitted_note, evaluated)


def _page(
    run: RunFiles,
    evaluated: str,
    metrics: dict[str, Any] | None,
    body: str,
    wall_seconds: float | None,
    start: float,
) -> str:
    """The whole page: the header with the summary, ``body``, and a footer timed from ``start``."""
    wall = wall_seconds
    if wall is None:
        wall = (run.summary.get("timings") or {}).get("wall_seconds")
    # a directory of effnet evaluate has no config.yaml: its eval_report.json names the data
    about = run.config or {k: run.summary[k] for k in ("data", "label_mode") if k in run.summary}
    summary = summary_block(
        split=evaluated,
        metrics=metrics,
        config=about,
        data=run.data,
        model_name=str(run.config.get("model") or run.checkpoint_meta.get("architecture") or ""),
        weights=str(run.config.get("weights") or ""),
        wall_seconds=wall,
    )
    name = run.run_dir.resolve().name
    header = f'<h1>effnet run report: {esc(name)}</h1><section id="summary">{summary}</section>'
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    seconds = time.perf_counter() - start
    footer = (
        f"Written by effnet {esc(__version__)} on {stamp} in "
        f'<span id="report-seconds">{seconds:.1f}</span> s from {esc(run.run_dir)}.'
    )
    return page(f"effnet report: {name}", header, NAV, body, footer)
