"""``effnet export`` as one call: a model name or checkpoint in, a checked export (and
optionally a checked int8 model) out.

The int8 model is calibrated on images of the data source and measured on its held-out images.
When the checkpoint's fine-tuning run left its ``data.json`` beside it and the source is the one
it trained on, those are the run's own train and test files (:func:`effnet.data.recorded_splits`),
so no image it was evaluated on was seen during calibration.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from effnet.errors import BadDataError, ConfigError, WeightsError
from effnet.export.formats import (
    FORMATS,
    ExportResult,
    check_suffix,
    export_model,
    export_preprocess,
)
from effnet.export.quantize import Int8AccuracyError, quantize_int8

__all__ = ["Int8Options", "export_source", "int8_loaders", "model_from_source"]

_CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".tar")


def model_from_source(
    source: str,
    *,
    model: str | None = None,
    pretrained: bool = False,
    num_classes: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """(model, metadata) for a variant name (``"efficientnet_b0"``) or a checkpoint path.

    A checkpoint goes through ``effnet.weights.load_checkpoint`` (``model`` names the variant of
    a foreign file without effnet metadata); a name through ``effnet.create_model``.
    """
    path = Path(source).expanduser()
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if path.exists():
        from effnet.weights import load_checkpoint

        built, meta = load_checkpoint(path, model=model, **kwargs)
        return built, {"source": str(path), **{k: v for k, v in meta.items() if k != "spec"}}
    if path.suffix.lower() in _CHECKPOINT_SUFFIXES or "/" in source or "\\" in source:
        raise FileNotFoundError(
            f"no checkpoint at {path}; pass an existing weights file or a model name from "
            f"`effnet list`"
        )
    from effnet.factory import create_model

    return create_model(source, pretrained=pretrained, **kwargs), {
        "source": source,
        "pretrained": bool(pretrained),
    }


@dataclass(frozen=True)
class Int8Options:
    """An int8 model beside the fp32 export, and the data it is calibrated and checked on."""

    data: str
    """Labelled images: a class folder, split folders, a CSV, or ``"elpv"``."""
    label_mode: str | None = None
    """ELPV only; default: the run's (its ``data.json``), else 4class."""
    calibration_images: int = 512
    eval_images: int | None = None
    max_drop: float = 1.0
    threads: int | None = None

    def quantize_options(self) -> dict[str, Any]:
        """The options :func:`~effnet.export.quantize.quantize_int8` takes."""
        data_only = ("data", "label_mode")
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in data_only}


def int8_loaders(
    model: nn.Module,
    options: Int8Options,
    checkpoint: str | os.PathLike[str] | None = None,
    resolution: int | None = None,
) -> tuple[Any, Any]:
    """(calibration, held-out) batches of ``options.data``, preprocessed as the export at
    ``resolution`` will be: the checkpoint run's own train and test files when its record
    names this data."""
    import torch
    from torch.utils.data import DataLoader

    from effnet.data import ImageDataset, eval_transform, load_source, recorded_splits

    splits = recorded_splits(checkpoint, options.data, options.label_mode) if checkpoint else None
    if splits is None:
        splits = load_source(options.data, label_mode=options.label_mode)
    n_model = getattr(model, "num_classes", None)
    if n_model is not None and len(splits.classes) != n_model:
        raise BadDataError(
            f"{options.data} has {len(splits.classes)} classes {list(splits.classes)} but the "
            f"model predicts {n_model}; calibrate with the data the model was fine-tuned on"
        )
    held_out = splits.test or splits.val
    if held_out is None:
        raise BadDataError(
            f"{options.data} has no held-out split to measure the int8 accuracy on; use a "
            f"source that effnet.data splits (a class folder, a CSV) or one with val/test folders"
        )
    size = resolution or model.preprocess.input_size
    transform = eval_transform(export_preprocess(model, size))
    # a seeded shuffle: the calibration images, and so the int8 model, are reproducible
    gen = torch.Generator().manual_seed(0)
    calib = DataLoader(
        ImageDataset(splits.train, transform), batch_size=16, shuffle=True, generator=gen
    )
    return calib, DataLoader(ImageDataset(held_out, transform), batch_size=32)


def export_source(
    source: str,
    out: str | os.PathLike[str] | None = None,
    format: str = "onnx",
    *,
    resolution: int | None = None,
    dynamic_batch: bool = False,
    opset: int = 18,
    model: str | None = None,
    num_classes: int | None = None,
    pretrained: bool = False,
    int8: Int8Options | None = None,
) -> ExportResult:
    """Export a model name or checkpoint; with ``int8``, also a checked int8 ONNX model.

    The result's ``int8`` holds the int8 report; when int8 lost more than ``max_drop`` points
    the fp32 export is kept, no int8 file is written, and ``extra["int8_refused"]`` says why.
    A checkpoint's calibration temperature (stored by the fine-tuning run) is copied into the
    exported file's metadata, where :class:`effnet.predict.OnnxPredictor` applies it.
    """
    if resolution is not None:  # before the model is built and the data read
        from effnet.specs import check_input_size

        check_input_size(resolution)
    if int8 is not None and format != "onnx":
        raise ConfigError("--int8 produces an ONNX model: use it with --format onnx")
    if out is not None and format in FORMATS:  # before weights are fetched
        check_suffix(Path(out), format)
    net, meta = model_from_source(
        source, model=model, pretrained=pretrained, num_classes=num_classes
    )
    if getattr(net, "preprocess", None) is None:
        raise WeightsError(f"{source} built a model without preprocessing; export an effnet model")
    # the data first: a wrong --calib should fail before minutes of export
    loaders = int8_loaders(net, int8, source, resolution) if int8 is not None else None
    from effnet.weights.native import TEMPERATURE_KEY, stored_temperature

    extra: dict[str, Any] = {"source": meta.get("source", source)}
    temperature = stored_temperature(meta)
    if temperature is not None:  # a fine-tuned checkpoint's calibration travels with the file
        extra[TEMPERATURE_KEY] = temperature
    result = export_model(
        net,
        out,
        format,
        resolution=resolution,
        dynamic_batch=dynamic_batch or int8 is not None,
        opset=opset,
        metadata=extra,
    )
    result.extra.update(extra)
    if int8 is None or loaders is None:
        return result
    target = result.path.with_name(result.path.name.removesuffix(".onnx") + ".int8.onnx")
    try:
        report = quantize_int8(result.path, *loaders, out=target, **int8.quantize_options())
        result.int8 = report.to_dict()
    except Int8AccuracyError as exc:
        result.int8 = exc.report.to_dict()
        result.extra["int8_refused"] = str(exc)
    return result
