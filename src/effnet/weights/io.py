"""Reading weight files of any supported format, and effnet's own format.

effnet saves ``.safetensors`` (no pickle, memory-mappable) with its metadata (architecture spec,
class names, preprocessing) embedded in the header, plus the same metadata beside it as ``.json``
for people and other tools. Torch files are read with ``weights_only=True``: never unpickling
arbitrary objects.

A file is recognised by its first bytes, not by its name, so every error says what the file
really is (a truncated download, an ONNX model, a pickle holding objects, not a weights file at
all) and what to do about it.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from effnet.errors import WeightsError
from effnet.files import METADATA_KEY, atomic_write, write_text

__all__ = [
    "METADATA_KEY",
    "WeightsFileError",
    "file_kind",
    "read_metadata",
    "read_state_dict",
    "unwrap_state_dict",
    "write_safetensors",
]

# Containers training frameworks wrap state dicts in, in the order they are tried.
_WRAPPERS = ("state_dict", "model", "model_state_dict", "model_ema", "state_dict_ema", "ema")
_PREFIXES = ("module.", "model.", "_orig_mod.")  # DDP, Lightning, torch.compile
_RESAVE = (
    "save it again as a plain state dict: torch.save(model.state_dict(), path) or "
    "effnet.weights.save_model(model, path)"
)


class WeightsFileError(WeightsError):
    """A weights file that cannot be read: wrong format, truncated, or not a state dict."""


def file_kind(path: Path) -> str:
    """What the file's first bytes say it is: ``safetensors``, ``torch`` (zip), ``pickle``
    (torch's legacy format), ``onnx``, ``empty`` or ``unknown``."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        return "empty"
    if head[:4] == b"PK\x03\x04":
        return "torch"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        (size,) = struct.unpack("<Q", head[:8])
        if 0 < size < 100_000_000:
            return "safetensors"
    if head[:1] == b"\x08" and b"\x12" in head[:12]:  # protobuf: ir_version, then a string field
        return "onnx"
    return "unknown"


def unwrap_state_dict(obj: Any, path: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint dict and strip wrapper prefixes.

    Accepts a bare state dict or one nested under ``state_dict``, ``model``, ``model_ema``, ...
    (Lightning's ``state_dict`` with a ``model.`` prefix, DDP's ``module.``, compile's
    ``_orig_mod.``).
    """
    if not isinstance(obj, Mapping):
        raise WeightsFileError(f"{path} holds a {type(obj).__name__}, not a state dict; {_RESAVE}")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = dict(obj)
    else:
        for key in _WRAPPERS:
            if isinstance(obj.get(key), Mapping):
                return unwrap_state_dict(obj[key], f"{path}[{key!r}]")
        found = ", ".join(f"{k!r}" for k in list(obj)[:8]) or "nothing"
        raise WeightsFileError(
            f"{path} is a dict without tensors (keys: {found}); expected a state dict, or one "
            f"under {', '.join(repr(k) for k in _WRAPPERS)}"
        )
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load the tensors of a weights file and any effnet metadata it carries."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no weights file at {path}")
    if not path.is_file():
        raise WeightsFileError(f"{path} is not a regular file; pass the weights file itself")
    kind = file_kind(path)
    if kind == "safetensors":
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsFileError(
                f"{path} is a safetensors file that cannot be read ({exc}): it is truncated or "
                f"corrupt; download or save it again"
            ) from exc
        return unwrap_state_dict(tensors, str(path)), read_metadata(path)
    if kind in ("torch", "pickle"):
        return unwrap_state_dict(_torch_load(path), str(path)), _sidecar(path)
    if kind == "onnx":
        raise WeightsFileError(
            f"{path} is an ONNX model, not a weights file: run it with "
            f"effnet.predict.OnnxPredictor, or pass the checkpoint it was exported from"
        )
    what = "empty" if kind == "empty" else "neither safetensors nor a torch checkpoint"
    raise WeightsFileError(
        f"{path} is {what} (its first bytes match no weights format); expected an effnet "
        f".safetensors file or a torch state dict (.pth/.pt/.bin/.ckpt)"
    )


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or pickled-object files
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "Unpickling" in text:
            why = (
                "it pickles Python objects besides tensors, which effnet never unpickles (that "
                f"could run code); {_RESAVE}"
            )
        elif "zip" in text.lower() or "central directory" in text or "EOF" in text:
            why = "it is truncated or corrupt; download or save it again"
        else:
            why = f"torch.load(weights_only=True) failed: {text.splitlines()[0]}"
        raise WeightsFileError(f"cannot read {path}: {why}") from exc


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if side.is_file():
        try:
            data = json.loads(side.read_text())
            return data if isinstance(data, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
    return {}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """effnet metadata from a safetensors header (or its ``.json`` sidecar); {} if none.

    Metadata that is there but is not a JSON object is an error naming the file (it would
    otherwise break everything that reads it)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(path, framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError):
        header = {}
    if METADATA_KEY not in header:
        return _sidecar(path)
    try:
        data = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise WeightsFileError(
            f"{path}'s effnet metadata is not valid JSON ({exc}); save the model again"
        ) from exc
    if not isinstance(data, dict):
        raise WeightsFileError(
            f"{path}'s effnet metadata is a JSON {type(data).__name__}, expected an object "
            f"(spec, classes, preprocess); save the model again with effnet.weights.save_model"
        )
    return data


def write_safetensors(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], metadata: dict[str, Any]
) -> Path:
    """Write tensors + metadata atomically (temp file, then rename), plus a ``.json`` sidecar."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    text = json.dumps(metadata, indent=2, sort_keys=True)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={METADATA_KEY: text}))
    write_text(path.with_suffix(".json"), text + "\n")
    return path
