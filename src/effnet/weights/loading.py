"""From ``pretrained=`` (True, a tag or a path) to a checked effnet state dict and its context."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from effnet.registry import get_spec
from effnet.specs import ModelSpec, PreprocessConfig, spec_from_dict
from effnet.weights.convert import detect_format, normalise_format, to_effnet
from effnet.weights.hub import fetch
from effnet.weights.io import read_state_dict
from effnet.weights.labels import labels_for
from effnet.weights.records import WeightRecord, default_record, find_record, list_records

__all__ = ["LoadedWeights", "adapt_stem", "load_weights", "resolve_record"]


@dataclass
class LoadedWeights:
    """A state dict in effnet's keys and everything needed to use it correctly."""

    state_dict: dict[str, torch.Tensor]
    spec: ModelSpec
    preprocess: PreprocessConfig
    classes: list[str]
    source: str
    record: WeightRecord | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        weight = self.state_dict.get("classifier.weight")
        return int(weight.shape[0]) if weight is not None else 0


def resolve_record(model: str, pretrained: bool | str) -> WeightRecord | None:
    """``True`` -> the default record; a tag -> that record; a path -> None (a local file)."""
    if pretrained is True:
        return default_record(model)
    if not isinstance(pretrained, (str, os.PathLike)):
        raise TypeError(f"pretrained must be True, a weight tag or a file path, got {pretrained!r}")
    text = str(pretrained)
    if Path(text).expanduser().exists():
        return None
    if any(r.tag == text or r.origin.endswith(" " + text) for r in list_records(model)):
        return find_record(model, text)
    if os.sep in text or text.endswith((".safetensors", ".pth", ".pt", ".bin", ".ckpt")):
        raise FileNotFoundError(f"no weights file at {text}")
    tags = [r.tag for r in list_records(model)]
    raise KeyError(
        f"{text!r} is neither a weights file nor a weight tag of {model}; tags: "
        f"{', '.join(tags) or 'none catalogued'} (see `effnet weights {model}`)"
    )


# Architecture options a foreign file needs when no record says so (see docs/weights.md).
def _foreign_arch(fmt: str, spec: ModelSpec, path: Path) -> dict[str, object]:
    if fmt == "lukemelas":
        return {"bn_eps": 1e-3, "padding": "same"}
    if fmt == "timm":
        if path.name.startswith("tf_") or "/tf_" in str(path):
            return {"bn_eps": 1e-3, "padding": "same"}
        return {"bn_eps": 1e-5}
    if fmt == "torchvision":
        records = [r for r in list_records(spec.name) if r.source == "torchvision"]
        return dict(records[0].arch) if records else {"bn_eps": 1e-5}
    return {}


def load_weights(
    model: str | ModelSpec,
    pretrained: bool | str,
    fmt: str | None = None,
    arch: dict[str, object] | None = None,
    progress: bool = True,
) -> LoadedWeights:
    """Resolve, fetch, read and convert weights for ``model``.

    ``arch`` overrides the architecture options (padding, BN eps) otherwise taken from the record,
    the file's metadata, or the file's format.
    """
    name = model if isinstance(model, str) else model.name
    record = resolve_record(name, pretrained) if isinstance(model, str) else None
    if record is not None:
        path = fetch(record, progress=progress)
        state, metadata = read_state_dict(path)
        spec = get_spec(name, **{**record.arch, **(arch or {})})
        converted = to_effnet(state, spec, record.format)
        classes = labels_for(record.labels, _num_classes(converted))
        return LoadedWeights(
            converted, spec, record.preprocess, classes, record.name, record, metadata
        )

    path = Path(str(pretrained)).expanduser()
    state, metadata = read_state_dict(path)
    fmt = normalise_format(fmt) if fmt else detect_format(state)
    if metadata.get("spec"):
        saved = spec_from_dict(metadata["spec"])
        spec = saved.replace(**(arch or {})) if arch else saved
        if isinstance(model, str) and model not in (saved.name, saved.base):
            _check_same_architecture(model, saved, path)
    else:
        spec = model if isinstance(model, ModelSpec) else get_spec(name)
        spec = spec.replace(**{**_foreign_arch(fmt, spec, path), **(arch or {})})
    converted = to_effnet(state, spec, fmt)
    preprocess = (
        PreprocessConfig.from_dict(metadata["preprocess"])
        if metadata.get("preprocess")
        else spec.default_preprocess
    )
    classes = list(metadata.get("classes") or labels_for(
        "imagenet-1k" if fmt != "effnet" else "", _num_classes(converted)
    ))  # fmt: skip
    return LoadedWeights(converted, spec, preprocess, classes, str(path), None, metadata)


def _check_same_architecture(name: str, saved: ModelSpec, path: Path) -> None:
    asked = get_spec(name)
    if (asked.stages, asked.stem_channels, asked.head_channels) != (
        saved.stages,
        saved.stem_channels,
        saved.head_channels,
    ):
        raise ValueError(
            f"{path} holds {saved.name} weights (architecture saved in its metadata), not {name}; "
            f"create the model as {saved.name!r} or load the file with effnet.load_model()"
        )


def _num_classes(state: dict[str, torch.Tensor]) -> int:
    weight = state.get("classifier.weight")
    return int(weight.shape[0]) if weight is not None else 0


def adapt_stem(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Fit a pretrained RGB stem kernel (out, 3, k, k) to ``in_chans`` inputs.

    One channel: the sum over RGB, so a gray image x gives what the RGB image (x, x, x) gave.
    More channels: RGB repeated cyclically and rescaled by 3 / in_chans to keep activations'
    scale.
    """
    have = weight.shape[1]
    if have == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(in_chans // -have)
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (have / in_chans)
