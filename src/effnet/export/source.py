"""Resolve what the user wants to export: a registered model name or a checkpoint file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["load_source"]

_CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".tar")


def load_source(
    source: str,
    *,
    model: str | None = None,
    pretrained: bool = False,
    num_classes: int | None = None,
    **overrides: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """(model, metadata) for a variant name (``"efficientnet_b0"``) or a checkpoint path.

    A checkpoint goes through ``effnet.weights.load_checkpoint`` (``model`` names the variant of
    a foreign file without effnet metadata); a name through ``effnet.create_model``.
    """
    path = Path(source).expanduser()
    if path.exists():
        try:
            from effnet.weights import load_checkpoint
        except ImportError as exc:  # the weights package is optional in partial installs
            raise RuntimeError(
                f"{source} is a file, but effnet.weights (checkpoint loading) is not available "
                f"in this installation ({exc}); export by model name instead, e.g. "
                f"`effnet export efficientnet_b0`"
            ) from exc
        kwargs: dict[str, Any] = {}
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        built, meta = load_checkpoint(path, model=model, **kwargs)
        return built, {"source": str(path), **{k: v for k, v in meta.items() if k != "spec"}}
    if path.suffix.lower() in _CHECKPOINT_SUFFIXES or "/" in source or "\\" in source:
        raise FileNotFoundError(
            f"no checkpoint at {path}; pass an existing weights file or a model name from "
            f"`effnet list`"
        )
    import effnet

    kwargs = dict(overrides)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    built = effnet.create_model(source, pretrained=pretrained, **kwargs)
    return built, {"source": source, "pretrained": bool(pretrained)}
