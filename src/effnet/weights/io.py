"""Reading weight files of any supported format, and effnet's own format.

effnet saves ``.safetensors`` (no pickle, memory-mappable) with its metadata (architecture spec,
class names, preprocessing) embedded in the header, plus the same metadata beside it as ``.json``
for people and other tools. Torch files are read with ``weights_only=True``: never unpickling
arbitrary objects.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "METADATA_KEY",
    "WeightsFileError",
    "read_metadata",
    "read_state_dict",
    "unwrap_state_dict",
    "write_safetensors",
]

METADATA_KEY = "effnet"
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
# Containers training frameworks wrap state dicts in, in the order they are tried.
_WRAPPERS = ("state_dict", "model", "model_state_dict", "model_ema", "state_dict_ema", "ema")
_PREFIXES = ("module.", "model.", "_orig_mod.")  # DDP, Lightning, torch.compile


class WeightsFileError(ValueError):
    """A weights file that cannot be read: wrong format, truncated, or not a state dict."""


def unwrap_state_dict(obj: Any, path: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint dict and strip wrapper prefixes.

    Accepts a bare state dict or one nested under ``state_dict``, ``model``, ``model_ema``, ...
    (Lightning's ``state_dict`` with a ``model.`` prefix, DDP's ``module.``, compile's
    ``_orig_mod.``).
    """
    if not isinstance(obj, Mapping):
        raise WeightsFileError(f"{path} holds a {type(obj).__name__}, not a state dict")
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
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsFileError(
                f"{path} is not a readable safetensors file ({exc}); it may be truncated: "
                f"download or save it again"
            ) from exc
        return unwrap_state_dict(tensors, str(path)), read_metadata(path)
    if suffix in _TORCH_SUFFIXES:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for truncated or pickled-object files
            raise WeightsFileError(
                f"cannot load {path} with torch.load(weights_only=True) ({exc}). The file is "
                f"truncated or corrupt, or it pickles objects besides tensors (effnet never "
                f"unpickles arbitrary code): re-save it as a plain state dict or safetensors."
            ) from exc
        return unwrap_state_dict(obj, str(path)), _sidecar(path)
    raise WeightsFileError(
        f"unknown weights format {suffix or '(no suffix)'} for {path}; expected .safetensors or "
        f"a torch file ({', '.join(_TORCH_SUFFIXES)})"
    )


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if side.is_file():
        try:
            data = json.loads(side.read_text())
            return data if isinstance(data, dict) else {}
        except json.JSONDecodeError:
            return {}
    return {}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """effnet metadata from a safetensors header (or its ``.json`` sidecar); {} if none."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(path, framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError):
        header = {}
    if METADATA_KEY in header:
        return json.loads(header[METADATA_KEY])
    return _sidecar(path)


def write_safetensors(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], metadata: dict[str, Any]
) -> Path:
    """Write tensors + metadata atomically (temp file, then rename), plus a ``.json`` sidecar."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    text = json.dumps(metadata, indent=2, sort_keys=True)
    for target, write in (
        (path, lambda tmp: save_file(tensors, tmp, metadata={METADATA_KEY: text})),
        (path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text + "\n")),
    ):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return path
