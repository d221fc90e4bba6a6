"""The exported file format, and running an exported ONNX file.

``effnet export`` writes ``model.onnx`` (or ``.ts`` / ``.pt2``) and a sidecar ``model.onnx.json``
holding what a deployment needs besides the graph: the resize, crop, interpolation, mean/std,
channel count and class names of the weights, and for a fine-tuned checkpoint the calibration
temperature ``temperature`` (calibrated probabilities are ``softmax(logits / T)``; the graph
itself outputs the raw logits). ONNX files also carry the same JSON inside, under
:data:`effnet.files.METADATA_KEY` of their ``metadata_props``, so the graph cannot be served
with the wrong preprocessing even when the sidecar is lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from effnet.errors import ConfigError
from effnet.files import METADATA_KEY, write_json

__all__ = [
    "RUNTIMES",
    "metadata_path",
    "onnx_runner",
    "read_export_metadata",
    "session_options",
    "write_export_metadata",
]

RUNTIMES = ("onnxruntime", "openvino", "openvino-bf16")
"""Where an exported ONNX model can run. ``openvino-bf16`` runs what is not int8 in bf16
(OpenVINO's default on CPUs with bf16 support); ``openvino`` forces fp32 there."""


def metadata_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar of an exported file: ``model.onnx`` -> ``model.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_export_metadata(path: str | os.PathLike[str], metadata: dict[str, Any]) -> Path:
    """Write the sidecar of the exported file at ``path`` (atomically)."""
    return write_json(metadata_path(path), metadata, sort_keys=True)


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


def onnx_runner(
    path: str | os.PathLike[str], runtime: str = "onnxruntime", threads: int | None = None
) -> Callable[[Any], Any]:
    """A function (N, C, H, W) float32 -> logits running an ONNX file in ``runtime``.

    ``"openvino"`` compiles for the CPU with the fp32 precision hint (OpenVINO's default on
    bf16-capable CPUs is bf16, which would change the numbers being checked);
    ``"openvino-bf16"`` asks for bf16 explicitly.
    """
    if runtime == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    if runtime in ("openvino", "openvino-bf16"):
        try:
            import openvino as ov
        except ImportError as exc:
            raise ConfigError(f"runtime={runtime!r} needs OpenVINO: pip install openvino") from exc
        precision = "bf16" if runtime == "openvino-bf16" else "f32"
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        compiled = ov.Core().compile_model(str(path), "CPU", config)
        return lambda x: compiled({0: x})[0]
    raise ConfigError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
