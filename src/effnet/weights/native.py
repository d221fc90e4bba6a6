"""effnet's own checkpoint format: safetensors + metadata that rebuilds the model by itself.

The metadata holds the full architecture spec (so custom compound coefficients and overrides such
as SAME padding survive), the class names and the preprocessing. ``load_model`` needs nothing but
the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from effnet._version import __version__
from effnet.model import EfficientNet
from effnet.specs import spec_to_dict
from effnet.weights.io import write_safetensors
from effnet.weights.loading import LoadedWeights, load_weights

__all__ = [
    "FORMAT_VERSION",
    "build_from_weights",
    "convert_file",
    "load_checkpoint",
    "load_model",
    "save_model",
]

FORMAT_VERSION = 1


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


def build_from_weights(
    loaded: LoadedWeights,
    num_classes: int | None = None,
    in_chans: int | None = None,
    **model_kwargs: Any,
) -> EfficientNet:
    """An EfficientNet with ``loaded``'s weights; a different head or input gets adapted.

    A different ``num_classes`` keeps every pretrained weight but the classifier, which is new; a
    different ``in_chans`` adapts the stem (see :func:`effnet.weights.adapt_stem`).
    """
    from effnet.weights.loading import adapt_stem

    state = dict(loaded.state_dict)
    have_classes = loaded.num_classes
    want_classes = have_classes if num_classes is None else num_classes
    have_chans = int(state["stem.conv.weight"].shape[1])
    want_chans = have_chans if in_chans is None else in_chans
    model = EfficientNet(loaded.spec, num_classes=want_classes, in_chans=want_chans, **model_kwargs)
    if want_chans != have_chans:
        state["stem.conv.weight"] = adapt_stem(state["stem.conv.weight"], want_chans)
    new_head = want_classes != have_classes
    if new_head:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=not new_head)
    if unexpected or [k for k in missing if not k.startswith("classifier.")]:
        raise RuntimeError(f"weights did not load: missing {missing}, unexpected {unexpected}")
    model.preprocess = loaded.preprocess
    model.class_names = loaded.classes if not new_head else None
    model.pretrained_source = loaded.source
    return model


def load_model(path: str | os.PathLike[str], **model_kwargs: Any) -> EfficientNet:
    """Rebuild a model from an effnet checkpoint file (architecture read from its metadata)."""
    model, _ = load_checkpoint(path, **model_kwargs)
    return model


def load_checkpoint(
    path: str | os.PathLike[str], model: str | None = None, **model_kwargs: Any
) -> tuple[EfficientNet, dict[str, Any]]:
    """(model, metadata) from a weights file. Foreign files need ``model`` (the variant name);
    a fine-tuning run directory loads its best checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = _checkpoint_in_run(path)
    if model is None:
        from effnet.weights.io import read_metadata

        meta = read_metadata(path) if path.suffix == ".safetensors" else {}
        if not meta.get("spec"):
            raise ValueError(
                f"{path} carries no effnet metadata, so its architecture is unknown; pass the "
                f"variant name (e.g. model='efficientnet_b0')"
            )
        from effnet.specs import spec_from_dict

        target: Any = spec_from_dict(meta["spec"])
    else:
        target = model
    loaded = load_weights(target, str(path))
    built = build_from_weights(loaded, **model_kwargs)
    return built, loaded.metadata


def _checkpoint_in_run(run: Path) -> Path:
    for name in ("best.safetensors", "last.safetensors", "model.safetensors"):
        for candidate in (run / name, run / "checkpoints" / name):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"{run} is a directory without best.safetensors, last.safetensors or model.safetensors; "
        f"pass the checkpoint file itself"
    )


def convert_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    model: str | None = None,
    from_format: str | None = None,
    to_format: str = "effnet",
    arch: dict[str, object] | None = None,
) -> Path:
    """Convert a weights file between effnet, torchvision, timm and efficientnet_pytorch.

    To effnet: writes ``dst`` as .safetensors with full metadata. To a foreign format: writes a
    plain state dict (``.pth`` via torch.save, or ``.safetensors``) that the other library's
    ``load_state_dict`` accepts.
    """
    import torch

    from effnet.weights.convert import from_effnet, normalise_format

    to_format = normalise_format(to_format)
    src_path = Path(src)
    if model is None:
        built, _ = load_checkpoint(src_path)
    else:
        loaded = load_weights(model, str(src_path), fmt=from_format, arch=arch)
        built = build_from_weights(loaded)
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
