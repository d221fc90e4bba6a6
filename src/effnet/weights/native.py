"""effnet's own checkpoint format: safetensors + metadata that rebuilds the model by itself.

The metadata holds the full architecture spec (so custom compound coefficients survive), the
class names and the one copy of the preprocessing. ``load_checkpoint`` needs nothing but the file;
it goes through the same construction path as ``create_model`` (:mod:`effnet.weights.loading`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from effnet._version import __version__
from effnet.errors import WeightsError
from effnet.model import EfficientNet
from effnet.specs import ModelSpec, spec_from_dict, spec_to_dict
from effnet.weights.io import read_state_dict, write_safetensors
from effnet.weights.loading import build, read_weights

__all__ = [
    "FORMAT_VERSION",
    "TEMPERATURE_KEY",
    "checkpoint_in_run",
    "checkpoint_spec",
    "convert_file",
    "load_checkpoint",
    "model_metadata",
    "save_model",
    "stored_temperature",
]

FORMAT_VERSION = 2
"""2: the spec no longer carries preprocessing; the top-level ``preprocess`` is the one copy."""

TEMPERATURE_KEY = "temperature"
"""Metadata key of the temperature ``T`` a fine-tuning run fitted (calibrated probabilities are
``softmax(logits / T)``); the exported file's metadata carries it under the same key."""


def stored_temperature(metadata: Mapping[str, Any]) -> float | None:
    """The calibration temperature a checkpoint's (or an exported file's) metadata holds, or
    None when it holds none (a file from before calibration, ImageNet weights)."""
    value = metadata.get(TEMPERATURE_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise WeightsError(
            f"the metadata's {TEMPERATURE_KEY!r} is {value!r}, expected a positive number; "
            f"remove the key or save the model again"
        )
    return float(value)


def model_metadata(model: EfficientNet, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to rebuild and use ``model``: spec, classes, preprocessing."""
    classes = list(getattr(model, "class_names", None) or [])
    return {
        "format": "effnet",
        "format_version": FORMAT_VERSION,
        "effnet_version": __version__,
        "architecture": model.spec.name,
        "spec": spec_to_dict(model.spec),
        "num_classes": model.num_classes,
        "in_chans": model.in_chans,
        "classes": classes,
        "preprocess": model.preprocess.to_dict(),
        **(extra or {}),
    }


def save_model(
    model: nn.Module, path: str | os.PathLike[str], extra: dict[str, Any] | None = None
) -> Path:
    """Save weights + metadata as ``path`` (.safetensors) and ``path`` .json, atomically."""
    if not isinstance(model, EfficientNet):
        raise TypeError(f"save_model expects an effnet EfficientNet, got {type(model).__name__}")
    return write_safetensors(path, model.state_dict(), model_metadata(model, extra))


def checkpoint_in_run(run: Path) -> Path:
    """The weights file of a run directory: best, else last, else model.safetensors."""
    for name in ("best.safetensors", "last.safetensors", "model.safetensors"):
        for candidate in (run / name, run / "checkpoints" / name):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"{run} is a directory without best.safetensors, last.safetensors or model.safetensors; "
        f"pass the checkpoint file itself"
    )


def checkpoint_spec(path: Path, model: str | ModelSpec | None = None) -> ModelSpec:
    """The architecture to build for ``path``: the one of ``model`` (a name or spec) when given,
    else the spec the file's effnet metadata carries. A file without metadata is read first, so
    the error says what it is (truncated, pickled objects, ONNX, a foreign library's state dict)
    and, for a readable foreign state dict, to pass the model name."""
    from effnet.registry import get_spec
    from effnet.weights.convert import detect_format

    if model is not None:
        return get_spec(model)
    state, meta = read_state_dict(path)
    if meta.get("spec"):
        return spec_from_dict(meta["spec"])
    fmt = detect_format(state, path)  # raises for a state dict of another kind of network
    raise WeightsError(
        f"{path} is a {fmt} state dict without effnet metadata, so its network is unknown; pass "
        f"the model name it was trained as (model='efficientnet_b0', or --model on the command "
        f"line; effnet.list_models() lists them)"
    )


def load_checkpoint(
    path: str | os.PathLike[str], model: str | ModelSpec | None = None, **build_kwargs: Any
) -> tuple[EfficientNet, dict[str, Any]]:
    """(model, metadata) from a weights file or a run directory (its best checkpoint).

    effnet files rebuild from their own metadata; foreign files (torchvision, timm,
    efficientnet_pytorch state dicts) need ``model``, the name whose network they hold.
    """
    path = Path(path)
    if path.is_dir():
        path = checkpoint_in_run(path)
    spec = checkpoint_spec(path, model)
    loaded = read_weights(spec, path)
    built = build(spec, loaded, **build_kwargs)
    assert isinstance(built, EfficientNet)
    return built, loaded.metadata


def convert_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    model: str | None = None,
    from_format: str | None = None,
    to_format: str = "effnet",
) -> Path:
    """Convert a weights file between effnet, torchvision, timm and efficientnet_pytorch.

    The architecture comes from ``model`` (for timm's TF ports, timm's ``tf_`` name) or from the
    source's effnet metadata; the file's name is never consulted. To effnet: writes ``dst`` as
    .safetensors with full metadata. To a foreign format: a plain state dict (``.pth`` via
    torch.save, or ``.safetensors``) that the other library's ``load_state_dict`` accepts.
    """
    import torch

    from effnet.weights.convert import from_effnet, normalise_format

    to_format = normalise_format(to_format)
    src_path = Path(src)
    spec = checkpoint_spec(src_path, model)
    built = build(spec, read_weights(spec, src_path, fmt=from_format))
    assert isinstance(built, EfficientNet)
    dst_path = Path(dst)
    if to_format == "effnet":
        return save_model(built, dst_path, extra={"converted_from": str(src_path)})
    state = from_effnet(built.state_dict(), built.spec, to_format)
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    if dst_path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(dst_path))
    else:
        torch.save(state, dst_path)
    return dst_path
