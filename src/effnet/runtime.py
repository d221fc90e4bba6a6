"""Serve an exported model with ONNX Runtime, using the preprocessing saved beside it.

``effnet export`` writes ``model.onnx`` and ``model.onnx.json``; the JSON holds the resize, crop,
interpolation, mean/std, channel count and class names the weights need. :class:`OnnxPredictor`
reads both, so a deployment cannot pair the graph with the wrong preprocessing::

    predictor = OnnxPredictor("b0.onnx", threads=2)
    run = predictor.predict_files(["cat.jpg"], topk=3)
    logits = predictor.logits(batch)  # (N, C, H, W) float32, already preprocessed

The image pipeline is :func:`effnet.data.eval_transform`, the very one ``effnet predict`` uses
with the eager model, so eager and ONNX predictions match image for image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "METADATA_KEY",
    "OnnxPredictor",
    "metadata_path",
    "read_export_metadata",
    "session_options",
]

METADATA_KEY = "effnet"  # key of the JSON metadata inside an ONNX file's metadata_props


def metadata_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar of an exported file: ``model.onnx`` -> ``model.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_export_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Metadata of an exported file: the ``.json`` sidecar, else the ONNX model property."""
    path = Path(path)
    side = metadata_path(path)
    if side.is_file():
        return dict(json.loads(side.read_text()))
    if path.suffix == ".onnx" and path.is_file():
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        if METADATA_KEY in props:
            return dict(json.loads(props[METADATA_KEY]))
    if not path.exists():
        raise FileNotFoundError(f"no exported model at {path}; create one with `effnet export`")
    raise FileNotFoundError(
        f"no effnet metadata for {path}: expected {side} beside it (written by `effnet export`); "
        f"re-export the model so its preprocessing travels with it"
    )


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime CPU options: sequential execution and an explicit thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


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

        self.path = Path(path)
        self.metadata = read_export_metadata(self.path)
        if self.metadata.get("format", "onnx") != "onnx":
            raise ValueError(
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
        self._transform: Any = None

    @property
    def preprocess(self) -> Any:
        """The :class:`~effnet.specs.PreprocessConfig` saved with the model."""
        from effnet.specs import PreprocessConfig

        return PreprocessConfig.from_dict(self.metadata["preprocess"])

    def transform(self, image: Any) -> np.ndarray:
        """One PIL image -> a (C, H, W) float32 array, exactly as the eager model expects it."""
        if self._transform is None:
            from effnet.data import eval_transform

            self._transform = eval_transform(self.preprocess, in_chans=self.in_chans)
        return np.ascontiguousarray(self._transform(image).numpy(), dtype=np.float32)

    def logits(self, batch: Any) -> np.ndarray:
        """Raw logits for a preprocessed (N, C, H, W) batch (numpy array or torch tensor)."""
        array = np.ascontiguousarray(np.asarray(batch, dtype=np.float32))
        if array.ndim == 3:
            array = array[None]
        expected = self.metadata.get("input_shape")
        if expected and (array.ndim != 4 or list(array.shape[1:]) != list(expected[1:])):
            raise ValueError(
                f"{self.path.name} expects input of shape (N, {', '.join(map(str, expected[1:]))})"
                f", got {tuple(array.shape)}; use predict_images() to preprocess pictures"
            )
        return np.asarray(self.session.run(None, {self.input_name: array})[0])

    def predict_images(self, images: Iterable[Any], topk: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (label, probability) pairs for PIL images (or paths to image files)."""
        from effnet.data import load_image

        arrays = [
            self.transform(load_image(im) if isinstance(im, (str, os.PathLike)) else im)
            for im in images
        ]
        if not arrays:
            return []
        probs = _softmax(self.logits(np.stack(arrays)))
        k = min(topk, probs.shape[-1])
        top = np.argsort(-probs, axis=-1)[:, :k]
        return [[(self._label(int(i)), float(p[i])) for i in row] for row, p in zip(top, probs)]

    def predict_files(
        self, inputs: Iterable[str | os.PathLike[str]], topk: int = 5, batch_size: int = 16
    ) -> Any:
        """Like :func:`effnet.predict.predict_files`, but through ONNX Runtime."""
        from effnet.data import UnreadableImageError, load_image
        from effnet.predict import Prediction, PredictionRun, expand_inputs

        files = expand_inputs(inputs)
        run = PredictionRun()
        for start in range(0, len(files), batch_size):
            arrays, kept = [], []
            for path in files[start : start + batch_size]:
                try:
                    arrays.append(self.transform(load_image(path)))
                    kept.append(path)
                except UnreadableImageError as exc:
                    run.skipped.append((str(path), exc.reason))
            if not arrays:
                continue
            probs = _softmax(self.logits(np.stack(arrays)))
            k = min(topk, probs.shape[-1])
            for path, p in zip(kept, probs):
                idx = [int(i) for i in np.argsort(-p)[:k]]
                run.predictions.append(
                    Prediction(
                        str(path), [self._label(i) for i in idx], [float(p[i]) for i in idx], idx
                    )
                )
        return run

    def _label(self, index: int) -> str:
        return self.classes[index] if index < len(self.classes) else str(index)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
