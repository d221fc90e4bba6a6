"""Export to ONNX, TorchScript and torch.export's ExportedProgram, each checked against eager.

Every export works on :func:`~effnet.export.fold.optimize`'s folded copy, fixes the spatial size
(so TF "SAME" padding becomes constants), optionally keeps the batch dimension dynamic, reloads
the written file, runs it on a fixed random batch and records the largest logit difference to
the eager model. The preprocessing the model needs is written beside the file as
``<file>.json`` (and, for ONNX, inside it; :mod:`effnet.export.artifact`) so
:class:`effnet.predict.OnnxPredictor` can serve it alone.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from effnet._version import __version__
from effnet.errors import ConfigError, did_you_mean
from effnet.export.artifact import metadata_path, read_export_metadata, write_export_metadata
from effnet.export.fold import PARITY_ATOL, ParityError, max_abs_diff, optimize, parity_input

__all__ = [
    "FORMATS",
    "ExportResult",
    "export_metadata",
    "export_model",
    "export_onnx",
    "export_preprocess",
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
# what each format's file may end in (the first is the default): a file named for one format
# and written in another is refused, since runtimes pick the reader by the suffix
_SUFFIXES = {"onnx": (".onnx",), "torchscript": (".ts", ".pt", ".pth", ".torchscript"),
             "exported-program": (".pt2",)}  # fmt: skip


def check_suffix(path: Path, format: str) -> None:
    """Refuse a file name whose suffix is not ``format``'s, naming both ways out."""
    suffix = path.suffix.lower()
    if suffix in _SUFFIXES[format]:
        return
    owner = next((f for f, ends in _SUFFIXES.items() if suffix in ends), None)
    other = f" ({suffix} is {owner}'s: pass --format {owner} for that)" if owner else ""
    raise ConfigError(
        f"{format} files end in {' or '.join(_SUFFIXES[format])}, got {path.name}{other}; "
        f"use e.g. --out {path.with_suffix(_SUFFIX[format]).name}"
    )


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

    def describe(self) -> list[str]:
        """What was written and how well it matches eager, in lines for a terminal."""
        source = self.extra.get("source", self.path.stem)
        lines = [
            f"exported {source} -> {self.path} ({self.format}, {self.seconds:.1f} s); "
            f"preprocessing in {self.metadata_path}",
            f"parity vs eager: max |logit difference| = {self.parity_max_abs_diff:.2e} "
            f"(allowed {self.parity_atol:g}) -- OK",
        ]
        if self.extra.get("temperature"):
            lines.append(
                f"calibration temperature {self.extra['temperature']:.3f} in the metadata "
                "(OnnxPredictor applies it: probabilities = softmax(logits / T))"
            )
        if self.graph:
            g = self.graph
            lines.append(
                f"graph: opset {g['opset']}, input {g['input_shape']}, {sum(g['ops'].values())} "
                f"nodes, padding {'static' if g['static_padding'] else 'DYNAMIC'}"
            )
        if self.int8:
            i8 = self.int8
            lines.append(
                f"int8 (held-out, {i8['eval_images']} images): fp32 top-1 {i8['fp32_top1']:.2f}%"
                f"  int8 top-1 {i8['int8_top1']:.2f}%  drop {i8['drop_points']:+.2f} points "
                f"(allowed {i8['max_drop']}), recipe {i8['recipe']}"
            )
            if i8["accepted"]:
                lines.append(f"int8 model -> {i8['path']}")
        return lines


def export_preprocess(model: nn.Module, resolution: int) -> Any:
    """The model's preprocessing at the export's ``resolution``: the weights' own when the size
    is theirs, else resized straight to it (the crop ratio is the weights', the resize follows
    the new size). None for a model without preprocessing."""
    pre = getattr(model, "preprocess", None)
    if pre is None or pre.input_size == resolution:
        return pre
    return dataclasses.replace(pre, input_size=resolution, resize=None)


def export_metadata(
    model: nn.Module, resolution: int, dynamic_batch: bool, fmt: str, **extra: Any
) -> dict[str, Any]:
    """What a deployment needs besides the graph: preprocessing, classes, input layout."""
    spec = getattr(model, "spec", None)
    preprocess = export_preprocess(model, resolution)
    pp = preprocess.to_dict() if preprocess is not None else {"input_size": resolution}
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


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str] | None = None,
    format: str = "onnx",
    *,
    resolution: int | None = None,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    atol: float = PARITY_ATOL,
    metadata: dict[str, Any] | None = None,
) -> ExportResult:
    """Export ``model``'s folded copy in ``format`` (one of :data:`FORMATS`), reload the file,
    and check it against eager.

    The spatial size is fixed (``resolution``, default the model's input size), so SAME padding
    is exported as constants; the batch dimension stays dynamic unless ``dynamic_batch=False``.
    ONNX needs ``opset`` >= 17 (the dynamo exporter); ExportedProgram files end in ``.pt2``.
    ``metadata`` is added to the preprocessing and classes saved beside the file. Raises
    :class:`~effnet.export.fold.ParityError` when the reloaded file's logits differ from eager
    by more than ``atol``.
    """
    if resolution is not None:
        from effnet.specs import check_input_size

        check_input_size(resolution)
    if format not in FORMATS:
        raise ConfigError(
            f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}."
            + did_you_mean(format, FORMATS)
        )
    if format == "onnx" and opset < 17:
        raise ConfigError(f"opset {opset} is too old: effnet exports opset >= 17 (default 18)")
    if path is None:
        path = Path(getattr(getattr(model, "spec", None), "name", "model") + _SUFFIX[format])
    path = Path(path)
    check_suffix(path, format)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"expected a torch nn.Module (e.g. from effnet.create_model), got "
            f"{type(model).__name__}"
        )
    start = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    folded = optimize(model, channels_last=False, check=False)
    x = parity_input(folded, 2 if dynamic_batch else 1, resolution)
    meta = export_metadata(model, x.shape[-1], dynamic_batch, format, **(metadata or {}))
    graph = None
    if format == "onnx":
        run, graph = _save_onnx(folded, x, path, opset, dynamic_batch, meta)
        meta["opset"] = graph["opset"]
    else:
        run = _TORCH_SAVERS[format](folded, x, path, dynamic_batch)
    diff = float("nan")
    if check:
        diff = _parity(model, run, x, dynamic_batch)
        if not diff <= atol:
            raise ParityError(
                f"{format} output differs from eager by {diff:.3g} (allowed {atol:g}); the export "
                f"is not trustworthy: check the opset and your torch/onnxruntime versions"
            )
    meta["parity_max_abs_diff"] = diff if check else None
    write_export_metadata(path, meta)
    seconds = time.perf_counter() - start
    return ExportResult(path, format, diff, atol, seconds, metadata_path(path), graph)


def export_onnx(model: nn.Module, path: str | os.PathLike[str], **options: Any) -> ExportResult:
    """:func:`export_model` to ONNX, checked in ONNX Runtime."""
    return export_model(model, path, "onnx", **options)


def export_torchscript(
    model: nn.Module, path: str | os.PathLike[str], **options: Any
) -> ExportResult:
    """:func:`export_model` to TorchScript (``torch.jit.load``-able, no Python needed)."""
    return export_model(model, path, "torchscript", **options)


def export_program(model: nn.Module, path: str | os.PathLike[str], **options: Any) -> ExportResult:
    """:func:`export_model` to a ``torch.export`` ExportedProgram (``.pt2``)."""
    return export_model(model, path, "exported-program", **options)


def _save_onnx(
    folded: nn.Module,
    x: torch.Tensor,
    path: Path,
    opset: int,
    dynamic_batch: bool,
    meta: dict[str, Any],
) -> tuple[Callable[[torch.Tensor], Any], dict[str, Any]]:
    """Export with the dynamo exporter, rewrite the graph for ONNX Runtime, check that padding
    is constant, embed the metadata, save; (an ONNX Runtime runner of the file, its summary)."""
    import onnx
    import onnxruntime as ort

    from effnet.export.graph import inspect_graph, optimize_graph, set_metadata

    big = sum(p.numel() * p.element_size() for p in folded.parameters()) > 1.5 * 2**30
    dynamic_shapes = None
    if dynamic_batch:
        dynamic_shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):  # it prints progress
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
    set_metadata(proto, {**meta, "opset": summary.opset})
    # over protobuf's 2 GB limit the weights go to a .data file beside the graph
    extra = {"save_as_external_data": True, "location": path.name + ".data"} if big else {}
    onnx.save(proto, str(path), **extra)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return (lambda b: sess.run(None, {INPUT_NAME: b.numpy()})[0]), summary.to_dict()


def _save_torchscript(folded: nn.Module, x: torch.Tensor, path: Path, dynamic: bool) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still shipped
        traced = torch.jit.trace(folded, (x,), check_trace=False)
        traced.save(str(path))
        return torch.jit.load(str(path))


def _save_program(folded: nn.Module, x: torch.Tensor, path: Path, dynamic: bool) -> Any:
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic else None
    torch.export.save(torch.export.export(folded, (x,), dynamic_shapes=shapes), str(path))
    return torch.export.load(str(path)).module()


_TORCH_SAVERS: dict[str, Callable[[nn.Module, torch.Tensor, Path, bool], Any]] = {
    "torchscript": _save_torchscript,
    "exported-program": _save_program,
}
