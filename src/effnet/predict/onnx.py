"""Serve an exported model with ONNX Runtime, using the preprocessing saved beside it.

``effnet export`` writes ``model.onnx`` and ``model.onnx.json`` (:mod:`effnet.export.artifact`);
:class:`OnnxPredictor` reads both, so a deployment cannot pair the graph with the wrong
preprocessing::

    predictor = OnnxPredictor("b0.onnx", threads=2)
    run = predictor.predict_files(["cat.jpg"], topk=3)
    logits = predictor.logits(batch)  # (N, C, H, W) float32, already preprocessed
    probs = predictor.probs(batch)  # softmax(logits / T): calibrated when the file carries T

A fine-tuned checkpoint's calibration temperature travels in the metadata (key
``temperature``); :meth:`OnnxPredictor.probs` and :meth:`OnnxPredictor.predict_files` apply it.

The image pipeline is :func:`effnet.data.eval_transform` and the batch loop
:func:`effnet.predict.files.classify_files`, the very ones ``effnet predict`` uses with the eager
model, so eager and ONNX predictions match image for image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from effnet.errors import ConfigError
from effnet.export.artifact import read_export_metadata, session_options
from effnet.predict.files import PredictionRun, classify_files
from effnet.weights.native import stored_temperature

__all__ = ["OnnxPredictor"]


class OnnxPredictor:
    """An exported ONNX classifier plus its preprocessing and class names.

    Args:
        path: the ``.onnx`` file written by ``effnet export`` (its ``.json`` sidecar is read
            too; a file without one falls back to the metadata embedded in the graph).
        threads: intra-op threads (default: ONNX Runtime's choice, all cores).
        providers: ONNX Runtime execution providers (default CPU).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        from effnet.data import eval_transform
        from effnet.specs import PreprocessConfig

        self.path = Path(path)
        self.metadata = read_export_metadata(self.path)
        if self.metadata.get("format", "onnx") != "onnx":
            raise ConfigError(
                f"{self.path} was exported as {self.metadata['format']!r}; OnnxPredictor runs "
                f"ONNX files: export with --format onnx"
            )
        self.session = ort.InferenceSession(
            str(self.path),
            session_options(threads),
            providers=list(providers or ["CPUExecutionProvider"]),
        )
        self.input_name = self.session.get_inputs()[0].name
        self.classes: list[str] = list(self.metadata.get("classes") or [])
        self.in_chans = int(self.metadata.get("in_chans", 3))
        self.preprocess = PreprocessConfig.from_dict(self.metadata["preprocess"])
        self._transform = eval_transform(self.preprocess, in_chans=self.in_chans)
        self.temperature = stored_temperature(self.metadata) or 1.0
        """Calibrated probabilities are ``softmax(logits / temperature)`` (1.0: none stored)."""

    def transform(self, image: Any) -> np.ndarray:
        """One PIL image -> a (C, H, W) float32 array, exactly as the eager model expects it."""
        return np.ascontiguousarray(self._transform(image).numpy(), dtype=np.float32)

    def logits(self, batch: Any) -> np.ndarray:
        """Raw logits for a preprocessed (N, C, H, W) batch (numpy array or torch tensor)."""
        array = np.ascontiguousarray(np.asarray(batch, dtype=np.float32))
        if array.ndim == 3:
            array = array[None]
        expected = self.metadata.get("input_shape")
        if expected and (array.ndim != 4 or list(array.shape[1:]) != list(expected[1:])):
            raise ConfigError(
                f"{self.path.name} expects input of shape (N, {', '.join(map(str, expected[1:]))})"
                f", got {tuple(array.shape)}; use predict_files() to preprocess pictures"
            )
        return np.asarray(self.session.run(None, {self.input_name: array})[0])

    def probs(self, batch: Any) -> np.ndarray:
        """Class probabilities ``softmax(logits / temperature)`` for a preprocessed batch."""
        logits = torch.from_numpy(self.logits(batch)).float()
        return (logits / self.temperature).softmax(-1).numpy()

    def predict_files(
        self,
        inputs: Iterable[str | os.PathLike[str]],
        topk: int | None = None,
        batch_size: int = 16,
    ) -> PredictionRun:
        """Like :func:`effnet.predict.predict_files`, but through ONNX Runtime (with the
        temperature stored in the metadata)."""
        return classify_files(
            inputs,
            self._transform,
            lambda batch: torch.from_numpy(self.logits(batch.numpy())),
            self.classes,
            topk=topk,
            batch_size=batch_size,
            temperature=self.temperature,
        )
