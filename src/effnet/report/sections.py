"""The report's sections, each a function from plain data to an HTML fragment.

Order on the page: the summary a person reads first, learning curves, confusion matrices,
per-class metrics, the gallery, calibration, the config and the split.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from effnet.report.calibration import Reliability
from effnet.report.html import Cell, esc, image, section, table

__all__ = [
    "GAP_WARNING",
    "GalleryItem",
    "calibration_section",
    "config_section",
    "gallery_section",
    "per_class_section",
    "plot_section",
    "split_section",
    "summary_block",
]

GAP_WARNING = 0.10
"""Accuracy and balanced accuracy further apart than this (10 points) get a warning."""
LOW_RECALL = 0.5


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _recipe(cfg: Mapping[str, Any]) -> str:
    """The training choices that matter most, in a few words."""
    if not cfg:
        return ""
    parts = []
    head, full = int(cfg.get("head_epochs") or 0), int(cfg.get("epochs") or 0)
    parts.append(f"{head} head + {full} full epochs" if head else f"{full} epochs")
    if cfg.get("lr") is not None:
        parts.append(f"lr {float(cfg['lr']):g}")
    aug = str(cfg.get("augment") or "none") + ("+vflip" if cfg.get("vflip") else "")
    parts.append(f"augment {aug}")
    if cfg.get("image_size"):
        parts.append(f"{cfg['image_size']} px")
    if cfg.get("progressive"):
        parts.append(f"progressive {cfg['progressive']}")
    if cfg.get("balance") not in (None, "none"):
        parts.append(f"balance {cfg['balance']}")
    if cfg.get("tta"):
        parts.append("TTA")
    return ", ".join(parts)


def summary_block(
    *,
    split: str,
    metrics: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    data: Mapping[str, Any],
    model_name: str,
    weights: str,
    wall_seconds: float | None,
) -> str:
    """The line a person reads first, and a plain warning when accuracy flatters the model."""
    facts = []
    source = data.get("source") or config.get("data")
    if source:
        mode = data.get("label_mode") or config.get("label_mode")
        classes = data.get("classes") or []
        facts.append(
            f"data <b>{esc(source)}</b>{f' ({esc(mode)})' if mode else ''}"
            + (f", {len(classes)} classes" if classes else "")
        )
    if model_name:
        facts.append(f"model <b>{esc(model_name)}</b>")
    if weights:
        facts.append(f"weights <b>{esc(weights)}</b>")
    recipe = _recipe(config)
    if recipe:
        facts.append(f"recipe: {esc(recipe)}")
    if wall_seconds:
        facts.append(f"wall time <b>{_duration(float(wall_seconds))}</b>")
    if metrics:
        acc, bal = metrics["accuracy"], metrics["balanced_accuracy"]
        big = (
            f'<span class="big">{esc(split)} accuracy {pct(acc)}</span> &nbsp; '
            f'<span class="big">balanced accuracy {pct(bal)}</span> '
            f"<span>on {metrics['num_samples']:,} {esc(split)} images, macro-F1 "
            f"{pct(metrics['macro_f1'])}</span>"
        )
    else:
        big = '<span class="big">no predictions to evaluate</span>'
    out = f'<div class="summary" id="summary-line">{big}<div class="facts">'
    out += " &middot; ".join(facts) + "</div></div>"
    if metrics and abs(metrics["accuracy"] - metrics["balanced_accuracy"]) > GAP_WARNING:
        gap = 100 * abs(metrics["accuracy"] - metrics["balanced_accuracy"])
        per_class = metrics["per_class"]
        worst = sorted(
            (v["recall"], name, v["support"]) for name, v in per_class.items() if v["support"]
        )[:3]
        named = ", ".join(f"{esc(n)} {pct(r)} of {s}" for r, n, s in worst)
        out += (
            f'<div class="warning" id="gap-warning" role="alert">Warning: accuracy and balanced '
            f"accuracy differ by {gap:.1f} points. Accuracy is carried by the frequent classes; "
            f"some classes are mostly missed (lowest recall: {named}). Read the per-class "
            "table before trusting the headline number.</div>"
        )
    return out


def plot_section(section_id: str, title: str, png: bytes | None, alt: str, missing: str) -> str:
    body = image(png, alt, cls="plot") if png else f'<p class="note">{esc(missing)}</p>'
    return section(section_id, title, body)


def per_class_section(metrics: Mapping[str, Any] | None, split: str) -> str:
    if not metrics:
        return section("per-class", "Per-class metrics", '<p class="note">No predictions.</p>')
    rows = []
    for name, v in metrics["per_class"].items():
        low = v["support"] > 0 and v["recall"] < LOW_RECALL
        rows.append(
            [
                Cell(name, name),
                Cell(pct(v["precision"]), v["precision"]),
                Cell(pct(v["recall"]), v["recall"], "low" if low else ""),
                Cell(pct(v["f1"]), v["f1"]),
                Cell(f"{v['support']:,}", v["support"]),
            ]
        )
    body = table(
        ["class", "precision", "recall", "F1", "support"],
        rows,
        sortable=True,
        table_id="per-class-table",
    )
    note = (
        f'<p class="note">On the {esc(split)} split. Click a header to sort; recall below '
        f"{LOW_RECALL:.0%} is marked.</p>"
    )
    return section("per-class", "Per-class precision, recall, F1", note + body)


@dataclass
class GalleryItem:
    """One gallery card."""

    path: str
    true: str
    pred: str
    prob: float
    """The model's probability for its prediction (raw softmax)."""
    calibrated: float | None
    picture: np.ndarray | None
    """(H, W, 3) uint8 as the model saw it; None when the file is gone."""
    overlay: np.ndarray | None


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _card(item: GalleryItem) -> str:
    if item.picture is not None:
        imgs = image(_jpeg(item.picture), f"{item.path} as the model saw it", "image/jpeg")
        if item.overlay is not None:
            imgs += image(
                _jpeg(item.overlay), f"class-activation map for {item.pred}", "image/jpeg"
            )
        pair = f'<div class="pair">{imgs}</div>'
    else:
        pair = '<div class="missing">image file not found</div>'
    wrong = item.true != item.pred
    cal = f" (calibrated {pct(item.calibrated)})" if item.calibrated is not None else ""
    return (
        f'<div class="card">{pair}<div class="cap">true <b>{esc(item.true)}</b> &middot; '
        f'predicted <b class="{"wrong" if wrong else ""}">{esc(item.pred)}</b> '
        f"{pct(item.prob)}{cal}<div class='path'>{esc(item.path)}</div></div></div>"
    )


def gallery_section(
    mistakes: Sequence[GalleryItem], unsure: Sequence[GalleryItem], note: str
) -> str:
    body = f'<p class="note">{esc(note)}</p>'
    body += "<h3>Most confident mistakes</h3>"
    body += (
        f'<div class="gallery" id="gallery-mistakes">{"".join(_card(i) for i in mistakes)}</div>'
        if mistakes
        else '<p class="note">No mistakes on this split.</p>'
    )
    body += "<h3>Least confident correct predictions</h3>"
    body += (
        f'<div class="gallery" id="gallery-unsure">{"".join(_card(i) for i in unsure)}</div>'
        if unsure
        else '<p class="note">No correct predictions on this split.</p>'
    )
    return section("gallery", "Gallery: what the model gets wrong, and where it looks", body)


def calibration_section(
    png: bytes | None,
    before: Reliability | None,
    after: Reliability | None,
    temperature: float,
    fitted_on: str,
    split: str,
) -> str:
    if before is None or after is None:
        return section("calibration", "Calibration", '<p class="note">No predictions.</p>')
    rows = [
        ["raw probabilities", f"{before.ece:.4f}", "1.00"],
        ["temperature-scaled", f"{after.ece:.4f}", f"{temperature:.2f}"],
    ]
    body = table(["", f"ECE on {split}", "temperature"], rows, table_id="ece-table")
    body += (
        f'<p class="note">Expected calibration error: {len(before.counts)} equal-width confidence '
        "bins, the sample-weighted gap between accuracy and mean confidence (0 = the "
        "probabilities can be taken at face value). The temperature divides the logits; it "
        f"never changes a prediction. {esc(fitted_on)}</p>"
    )
    if png:
        body += image(png, "reliability diagrams before and after temperature scaling", cls="plot")
    return section("calibration", "Calibration: can the probabilities be trusted?", body)


def _value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else str(v))


def config_section(config: Mapping[str, Any], checkpoint: str) -> str:
    if not config:
        body = '<p class="note">No config.yaml in this directory.</p>'
    else:
        rows = [[Cell(k), Cell(_value(v))] for k, v in config.items()]
        body = table(["key", "value"], rows, cls="kv", table_id="config-table")
    if checkpoint:
        body += f'<p class="note">Checkpoint: {esc(checkpoint)}</p>'
    return section("config", "Resolved config", body)


def split_section(data: Mapping[str, Any], fallback: Mapping[str, Sequence[int]]) -> str:
    """Images per class per split (from ``data.json``'s record, else ``fallback``: split ->
    counts per class), and the files skipped as unreadable with their reasons."""
    record = data.get("split") if isinstance(data.get("split"), dict) else {}
    classes = list(record.get("classes") or data.get("classes") or [])
    counts: dict[str, list[int]] = {}
    for name, part in (record.get("splits") or {}).items():
        per = part.get("class_counts", {})
        counts[name] = [int(per.get(c, 0)) for c in classes]
    if not counts:
        counts = {k: list(v) for k, v in fallback.items()}
    body = ""
    if counts and classes:
        names = list(counts)
        rows = [
            [Cell(c)]
            + [Cell(f"{counts[s][i]:,}", counts[s][i]) for s in names]
            + [Cell(f"{sum(counts[s][i] for s in names):,}")]
            for i, c in enumerate(classes)
        ]
        rows.append(
            [Cell("all")]
            + [Cell(f"{sum(counts[s]):,}") for s in names]
            + [Cell(f"{sum(sum(v) for v in counts.values()):,}")]
        )
        body += table(["class", *names, "total"], rows, table_id="split-table")
        how = record.get("mode")
        if how:
            seed = record.get("seed")
            fr = record.get("fractions") or {}
            frac = "/".join(f"{100 * fr[k]:.0f}" for k in ("train", "val", "test") if k in fr)
            body += (
                f'<p class="note">Split: {esc(how)}'
                + (f", fractions {frac} (train/val/test)" if frac else "")
                + (f", seed {seed}" if seed is not None else "")
                + ". Every file and its split are listed in data.json.</p>"
            )
    else:
        body += '<p class="note">No split record (data.json) in this directory.</p>'
    validation = data.get("validation") or {}
    skipped = validation.get("skipped_files") or []
    checked = validation.get("checked")
    if skipped:
        shown = skipped[:200]
        rows = [[Cell(s.get("path", "")), Cell(s.get("reason", ""))] for s in shown]
        more = len(skipped) - len(shown)
        body += f"<h3>Skipped files ({len(skipped):,} of {checked or '?'} checked)</h3>"
        body += table(["file", "reason"], rows, table_id="skipped-table")
        if more:
            body += f'<p class="note">... and {more:,} more (see data.json).</p>'
    elif validation:
        body += f'<p class="note">No file was skipped ({checked or 0:,} checked).</p>'
    return section("split", "Data split", body)
