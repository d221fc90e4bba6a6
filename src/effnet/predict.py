"""Classify image files with a model, batching directories and skipping unreadable files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from effnet.data import UnreadableImageError, eval_transform, list_images, load_image
from effnet.export.fold import optimize
from effnet.model import EfficientNet

__all__ = ["Prediction", "PredictionRun", "expand_inputs", "predict_files"]


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


def _batches(files: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(files), size):
        yield files[start : start + size]


def predict_files(
    model: nn.Module,
    inputs: Iterable[str | os.PathLike[str]],
    topk: int = 5,
    batch_size: int = 16,
    progress: bool = True,
) -> PredictionRun:
    """Top-k predictions for every readable image; unreadable ones are reported, not fatal.

    Preprocessing comes from ``model.preprocess`` (bound to its weights) and label names from
    ``model.class_names`` (ImageNet names for ImageNet weights, a checkpoint's own classes).
    An effnet model runs as its fused inference copy (BatchNorm folded, in-place activations);
    ``model`` itself is not changed.
    """
    files = expand_inputs(inputs)
    transform = eval_transform(model)
    names = list(getattr(model, "class_names", None) or [])
    device = next(model.parameters()).device
    run = PredictionRun()
    model.eval()
    fast = optimize(model, check=False) if isinstance(model, EfficientNet) else model
    with tqdm(total=len(files), unit="img", desc="predict", disable=not progress) as bar:
        for chunk in _batches(files, batch_size):
            tensors, kept = [], []
            for path in chunk:
                try:
                    tensors.append(transform(load_image(path)))
                    kept.append(path)
                except UnreadableImageError as exc:
                    run.skipped.append((str(path), exc.reason))
            bar.update(len(chunk))
            if not tensors:
                continue
            batch = torch.stack(tensors).to(device).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                probs = fast(batch).float().softmax(dim=-1)
            k = min(topk, probs.shape[-1])
            values, indices = probs.topk(k, dim=-1)
            for path, vals, idx in zip(kept, values.tolist(), indices.tolist()):
                labels = [names[i] if i < len(names) else str(i) for i in idx]
                run.predictions.append(Prediction(str(path), labels, vals, idx))
    return run
