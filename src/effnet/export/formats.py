"""Export to ONNX, TorchScript and torch.export's ExportedProgram, each checked against eager.

Every export works on :func:`~effnet.export.fold.optimize`'s folded copy, fixes the spatial size
(so TF "SAME" padding becomes constants), optionally keeps the batch dimension dynamic, reloads
the written file, runs it on a fixed random batch and records the largest logit difference to
the eager model. The preprocessing the model needs is written beside the file as
``<file>.json`` (and, for ONNX, inside it) so :mod:`effnet.runtime` can serve it alone.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from effnet._version import __version__
from effnet.export.fold import PARITY_ATOL, ParityError, max_abs_diff, optimize, parity_input
from effnet.runtime import metadata_path, read_export_metadata

__all__ = [
    "FORMATS",
    "ExportResult",
    "export_metadata",
    "export_model",
    "export_onnx",
    "export_program",
    "export_torchscript",
    "metadata_path",
    "read_export_metadata",
]

Format = Literal["onnx", "torchscript", "exported-program"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "exported-program")
DEFAULT_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "logits"
_SUFFIX = {"onnx": ".onnx", "torchscript": ".ts", "exported-program": ".pt2"}


@dataclass
class ExportResult:
    """Where an export went and how closely it reproduces the eager model."""

    path: Path
    format: str
    parity_max_abs_diff: float
    parity_atol: float
    seconds: float
    metadata_path: Path
    graph: dict[str, Any] | None = None
    int8: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "parity_atol": self.parity_atol,
            "seconds": round(self.seconds, 2),
            "metadata_path": str(self.metadata_path),
            "graph": self.graph,
            "int8": self.int8,
            **self.extra,
        }


def export_metadata(
    model: nn.Module, resolution: int, dynamic_batch: bool, fmt: str, **extra: Any
) -> dict[str, Any]:
    """What a deployment needs besides the graph: preprocessing, classes, input layout."""
    spec = getattr(model, "spec", None)
    preprocess = getattr(model, "preprocess", None)
    pp = preprocess.to_dict() if preprocess is not None else {"input_size": resolution}
    pp["input_size"] = resolution
    meta: dict[str, Any] = {
        "format": fmt,
        "effnet_version": __version__,
        "architecture": getattr(spec, "name", type(model).__name__),
        "num_classes": getattr(model, "num_classes", None),
        "in_chans": getattr(model, "in_chans", 3),
        "classes": list(getattr(model, "class_names", None) or []),
        "preprocess": pp,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "input_shape": [
            "batch" if dynamic_batch else 1,
            getattr(model, "in_chans", 3),
            resolution,
            resolution,
        ],
        "layout": "NCHW",
    }
    if spec is not None:
        try:
            from effnet.specs import spec_to_dict

            meta["spec"] = spec_to_dict(spec)
        except ImportError:  # older effnet without spec serialisation
            pass
    meta.update(extra)
    return meta


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _prepare(model: nn.Module, resolution: int | None) -> tuple[nn.Module, int]:
    """(folded contiguous copy, resolution)."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"expected a torch nn.Module (e.g. from effnet.create_model), got "
            f"{type(model).__name__}"
        )
    res = int(resolution or getattr(getattr(model, "preprocess", None), "input_size", 224))
    return optimize(model, channels_last=False, check=False), res


@contextmanager
def _eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the parity run, restoring the caller's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _parity(reference: nn.Module, run: Any, x: torch.Tensor, dynamic_batch: bool) -> float:
    """Worst logit difference of ``run`` vs eager on batches of 2 (and 3: dynamic batch)."""
    batches = [x, torch.cat([x, x[:1]])] if dynamic_batch else [x]
    worst = 0.0
    with _eval(reference), torch.inference_mode():
        for batch in batches:
            worst = max(worst, max_abs_diff(reference(batch), run(batch)))
    return worst


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    resolution: int | None = None,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    atol: float = PARITY_ATOL,
    metadata: dict[str, Any] | None = None,
) -> ExportResult:
    """Export to ONNX (opset >= 17) with the dynamo exporter, then check it in ONNX Runtime.

    The spatial size is fixed (``resolution``, default the model's input size), so SAME padding
    is exported as static Conv pads; the batch dimension stays dynamic unless
    ``dynamic_batch=False``. Raises :class:`~effnet.export.fold.ParityError` when ONNX Runtime's
    logits differ from eager by more than ``atol``.
    """
    import onnx

    from effnet.export.graph import inspect_graph, optimize_graph, set_metadata

    if opset < 17:
        raise ValueError(f"opset {opset} is too old: effnet exports opset >= 17 (default 18)")
    start = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folded, res = _prepare(model, resolution)
    x = parity_input(folded, 2 if dynamic_batch else 1, res)
    dynamic_shapes = None
    if dynamic_batch:
        dynamic_shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}
    big = sum(p.numel() * p.element_size() for p in folded.parameters()) > 1.5 * 2**30
    log = io.StringIO()
    with warnings.catch_warnings(), redirect_stdout(log):  # the exporter prints progress
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            folded,
            (x,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic_shapes,
            external_data=big,
        )
    proto = optimize_graph(program.model_proto)
    summary = inspect_graph(proto)
    if not summary.static_padding:
        raise RuntimeError(
            f"the exported graph computes padding at run time ({summary.dynamic_pads[:3]}); "
            f"SAME padding should be constants at a fixed resolution: report this with your "
            f"torch version ({torch.__version__})"
        )
    meta = export_metadata(
        model, res, dynamic_batch, "onnx", opset=summary.opset, **(metadata or {})
    )
    diff = float("nan")
    if big:  # over protobuf's 2 GB limit: weights go to a .data file, parity runs from disk
        set_metadata(proto, meta)
        onnx.save(proto, str(path), save_as_external_data=True, location=path.name + ".data")
        if check:
            diff = _onnx_parity(str(path), model, x, dynamic_batch, atol)
    else:
        if check:
            diff = _onnx_parity(proto.SerializeToString(), model, x, dynamic_batch, atol)
        meta["parity_max_abs_diff"] = diff if check else None
        set_metadata(proto, meta)
        onnx.save(proto, str(path))
    meta["parity_max_abs_diff"] = diff if check else None
    _write_json_atomic(metadata_path(path), meta)
    return ExportResult(
        path=path,
        format="onnx",
        parity_max_abs_diff=diff,
        parity_atol=atol,
        seconds=time.perf_counter() - start,
        metadata_path=metadata_path(path),
        graph=summary.to_dict(),
    )


def _onnx_parity(
    model: str | bytes, reference: nn.Module, x: torch.Tensor, dynamic_batch: bool, atol: float
) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    worst = _parity(
        reference, lambda b: sess.run(None, {INPUT_NAME: b.numpy()})[0], x, dynamic_batch
    )
    _raise_if_over(worst, atol, "ONNX Runtime")
    return worst


def _raise_if_over(diff: float, atol: float, what: str) -> None:
    if not diff <= atol:
        raise ParityError(
            f"{what} output differs from eager by {diff:.3g} (allowed {atol:g}); the export is "
            f"not trustworthy: check the opset and your torch/onnxruntime versions"
        )


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    resolution: int | None = None,
    dynamic_batch: bool = True,
    check: bool = True,
    atol: float = PARITY_ATOL,
    metadata: dict[str, Any] | None = None,
) -> ExportResult:
    """Trace the folded model to TorchScript (``torch.jit.load``-able, no Python needed)."""
    start = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folded, res = _prepare(model, resolution)
    x = parity_input(folded, 2 if dynamic_batch else 1, res)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still shipped
        traced = torch.jit.trace(folded, (x,), check_trace=False)
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
    return _checked_result(
        model, loaded, x, path, "torchscript", res, dynamic_batch, check, atol, metadata, start
    )


def export_program(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    resolution: int | None = None,
    dynamic_batch: bool = True,
    check: bool = True,
    atol: float = PARITY_ATOL,
    metadata: dict[str, Any] | None = None,
) -> ExportResult:
    """Save a ``torch.export`` ExportedProgram (``.pt2``; load with ``torch.export.load``)."""
    start = time.perf_counter()
    path = Path(path)
    if path.suffix != ".pt2":
        raise ValueError(
            f"torch.export only loads files ending in .pt2, got {path.name}; use e.g. "
            f"{path.with_suffix('.pt2').name}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    folded, res = _prepare(model, resolution)
    x = parity_input(folded, 2 if dynamic_batch else 1, res)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    program = torch.export.export(folded, (x,), dynamic_shapes=dynamic)
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    return _checked_result(
        model, loaded, x, path, "exported-program", res, dynamic_batch, check, atol, metadata, start
    )


def _checked_result(
    model: nn.Module,
    loaded: Any,
    x: torch.Tensor,
    path: Path,
    fmt: str,
    res: int,
    dynamic_batch: bool,
    check: bool,
    atol: float,
    metadata: dict[str, Any] | None,
    start: float,
) -> ExportResult:
    """The parity check of a reloaded torch export, its metadata file, and the result."""
    diff = float("nan")
    if check:
        diff = _parity(model, loaded, x, dynamic_batch)
        _raise_if_over(diff, atol, {"torchscript": "TorchScript"}.get(fmt, "ExportedProgram"))
    meta = export_metadata(model, res, dynamic_batch, fmt, **(metadata or {}))
    meta["parity_max_abs_diff"] = diff if check else None
    _write_json_atomic(metadata_path(path), meta)
    return ExportResult(path, fmt, diff, atol, time.perf_counter() - start, metadata_path(path))


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str] | None = None,
    format: str = "onnx",
    **kwargs: Any,
) -> ExportResult:
    """Export ``model`` in ``format`` (one of :data:`FORMATS`); see the per-format functions."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if path is None:
        name = getattr(getattr(model, "spec", None), "name", "model")
        path = Path(name + _SUFFIX[format])
    exporters = {
        "onnx": export_onnx,
        "torchscript": export_torchscript,
        "exported-program": export_program,
    }
    return exporters[format](model, path, **kwargs)  # type: ignore[operator]
