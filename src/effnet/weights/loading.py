"""The one construction path: resolve the weights, read them for a spec, build once, load.

``effnet.create_model`` and ``effnet.load_model`` both end here:

1. :func:`resolve_weights` turns ``pretrained=`` (True, a tag, a publisher's name, a path) into a
   :class:`~effnet.weights.records.WeightRecord` or a file;
2. the caller derives the spec from the *name* (and the user's overrides) -- never from the
   weights, so ``create_model(name)`` and ``create_model(name, pretrained=True)`` build the same
   network;
3. :func:`read_weights` reads the file and converts it to that spec, refusing a file whose own
   architecture (saved in effnet metadata) is another network;
4. :func:`build` constructs the model once and loads the state dict, adapting the head and the
   stem when the user asks for other class or channel counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effnet.errors import ConfigError, UnknownNameError, WeightsError
from effnet.model import EfficientNet, EfficientNetFeatures
from effnet.specs import ModelSpec, PreprocessConfig, spec_from_dict
from effnet.weights.convert import detect_format, normalise_format, to_effnet
from effnet.weights.hub import fetch
from effnet.weights.io import read_state_dict
from effnet.weights.labels import labels_for
from effnet.weights.records import WeightRecord, default_record, find_record, list_records

__all__ = [
    "BuildOptions",
    "LoadedWeights",
    "adapt_stem",
    "build",
    "read_weights",
    "resolve_weights",
]

_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".tar")


@dataclass
class LoadedWeights:
    """A state dict in effnet's keys, converted for one spec, and what is needed to use it."""

    state_dict: dict[str, torch.Tensor]
    preprocess: PreprocessConfig
    classes: list[str]
    source: str
    record: WeightRecord | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        weight = self.state_dict.get("classifier.weight")
        return int(weight.shape[0]) if weight is not None else 0

    @property
    def in_chans(self) -> int:
        return int(self.state_dict["stem.conv.weight"].shape[1])


def resolve_weights(
    model: str, pretrained: bool | str | os.PathLike[str] | None
) -> WeightRecord | Path | None:
    """``False``/``None`` -> None; ``True`` -> the default record; a tag or the publisher's name
    for a file (``ra_in1k``, ``IMAGENET1K_V1``) -> that record; an existing path -> the path."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True or pretrained == "DEFAULT":  # torchvision's name for the default
        return default_record(model)
    if not isinstance(pretrained, (str, os.PathLike)):
        raise ConfigError(
            f"pretrained must be True, a weight tag or a file path, got {pretrained!r}"
        )
    text = os.fspath(pretrained)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if any(
        r.tag == text or r.origin.endswith((" " + text, "." + text)) for r in list_records(model)
    ):
        return find_record(model, text)
    if os.sep in text or text.lower().endswith(_WEIGHT_SUFFIXES):
        raise FileNotFoundError(f"no weights file at {text}")
    return find_record(model, text)  # raises, listing the tags and near names


def read_weights(
    spec: ModelSpec,
    source: WeightRecord | Path,
    fmt: str | None = None,
    progress: bool = True,
) -> LoadedWeights:
    """Fetch (records) and read ``source``, converted to ``spec``'s keys and checked.

    An effnet file carries the spec it was saved from; when that is another network than ``spec``
    (other padding, BatchNorm eps, stages, ...) the file is refused with the name to use instead.
    A foreign file's format is detected from its keys (or given as ``fmt``); its architecture
    options come from ``spec``, i.e. from the model name, never from the file's name.
    """
    if isinstance(source, WeightRecord):
        path = fetch(source, progress=progress)
        state, metadata = read_state_dict(path)
        converted = to_effnet(state, spec, source.format)
        classes = labels_for(source.labels, _classifier_rows(converted))
        return LoadedWeights(converted, source.preprocess, classes, source.name, source, metadata)

    state, metadata = read_state_dict(source)
    fmt = normalise_format(fmt) if fmt else detect_format(state, source)
    if metadata.get("spec"):
        _check_same_network(spec, spec_from_dict(metadata["spec"]), source)
    converted = to_effnet(state, spec, fmt)
    preprocess = (
        PreprocessConfig.from_dict(metadata["preprocess"])
        if isinstance(metadata.get("preprocess"), dict)
        else PreprocessConfig(input_size=spec.resolution)
    )
    classes = list(metadata.get("classes") or labels_for(
        "imagenet-1k" if fmt != "effnet" else "", _classifier_rows(converted)
    ))  # fmt: skip
    if classes and len(classes) != _classifier_rows(converted):
        raise WeightsError(
            f"{source} is inconsistent: its classifier has {_classifier_rows(converted)} rows but "
            f"its metadata names {len(classes)} classes ({', '.join(classes[:5])}...). Save it "
            f"again with effnet.weights.save_model, or strip the metadata to load the tensors."
        )
    return LoadedWeights(converted, preprocess, classes, str(source), None, metadata)


def _check_same_network(asked: ModelSpec, saved: ModelSpec, path: Path) -> None:
    if saved.same_network(asked):
        return
    from effnet.registry import name_for

    right = name_for(saved)
    differ = [
        f"{k}={getattr(saved, k)!r} (not {getattr(asked, k)!r})"
        for k in ("padding", "bn_eps", "activation", "stem_channels", "head_channels")
        if getattr(saved, k) != getattr(asked, k)
    ] or ["its stages"]
    fix = f"create the model as {right!r}" if right else "load it with effnet.load_model(path)"
    raise WeightsError(
        f"{path} holds weights for {right or saved.name}, another network than {asked.name}: "
        f"{', '.join(differ)}. Loading them into {asked.name} would silently change the "
        f"predictions; {fix}."
    )


def _classifier_rows(state: dict[str, torch.Tensor]) -> int:
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


@dataclass(frozen=True)
class BuildOptions:
    """How :func:`build` shapes the model around its spec: the keywords of the same names of
    ``effnet.create_model`` (which documents them) and ``effnet.load_model``."""

    num_classes: int | None = None
    in_chans: int | None = None
    drop_rate: float | None = None
    drop_path_rate: float | None = None
    features_only: bool = False
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)
    global_pool: str = "avg"


def build(
    spec: ModelSpec,
    loaded: LoadedWeights | None = None,
    options: BuildOptions | None = None,
    *,
    preprocess: PreprocessConfig | None = None,
    record: WeightRecord | None = None,
    **changes: Any,
) -> nn.Module:
    """Construct the model of ``spec`` once and load ``loaded`` into it.

    ``options`` (or ``changes``: its fields by name) shape it: ``num_classes=None`` keeps the
    weights' classifier (1000 without weights); another count keeps every pretrained weight but
    the classifier, which starts fresh. ``in_chans`` adapts the stem (:func:`adapt_stem`).
    ``preprocess`` is the weights' unless given; ``record`` describes the weights (tag, url, Hub
    id) in ``model.pretrained_cfg``.
    """
    opts = replace(options or BuildOptions(), **changes)
    num_classes, in_chans, drop_path_rate = opts.num_classes, opts.in_chans, opts.drop_path_rate
    have_classes = loaded.num_classes if loaded is not None else 1000
    want_classes = have_classes if num_classes is None else num_classes
    want_chans = (loaded.in_chans if loaded is not None else 3) if in_chans is None else in_chans
    if want_classes < 0 or want_chans < 1:
        raise ConfigError(
            f"need num_classes >= 0 and in_chans >= 1, got {want_classes}, {want_chans}"
        )
    model: nn.Module
    if opts.features_only:
        model = EfficientNetFeatures(spec, tuple(opts.out_indices), want_chans, drop_path_rate)
    else:
        model = EfficientNet(
            spec, want_classes, want_chans, opts.drop_rate, drop_path_rate, opts.global_pool
        )
    new_head = opts.features_only or want_classes != have_classes
    if loaded is not None:
        state = dict(loaded.state_dict)
        if want_chans != loaded.in_chans:
            state["stem.conv.weight"] = adapt_stem(state["stem.conv.weight"], want_chans)
        own = model.state_dict()
        _check_head_width(model, state, new_head, loaded)
        if new_head:
            state = {k: v for k, v in state.items() if k in own and not k.startswith("classifier.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (new_head and k.startswith("classifier."))]
        if missing or unexpected:
            raise WeightsError(
                f"weights from {loaded.source} did not load into {spec.name}: missing "
                f"{missing[:5]}, unexpected {unexpected[:5]}"
            )
        model.pretrained_source = loaded.source
    model.preprocess = preprocess or (
        loaded.preprocess if loaded is not None else PreprocessConfig(input_size=spec.resolution)
    )
    if isinstance(model, EfficientNet) and loaded is not None and not new_head:
        model.class_names = list(loaded.classes) or None
    if record is not None:
        model.weights_info = {
            "tag": record.tag, "url": record.url, "hf_hub_id": record.hf_hub_id,
            "source": record.source, "license": record.license, "origin": record.origin,
        }  # fmt: skip
    return model


def _check_head_width(
    model: nn.Module, state: dict[str, Any], new_head: bool, loaded: LoadedWeights
) -> None:
    """A pooling that changes the classifier's input (``catavgmax``) cannot keep the weights'
    classifier: say so, and how to start a new head, before torch's size-mismatch error."""
    weight = state.get("classifier.weight")
    classifier = getattr(model, "classifier", None)
    if new_head or weight is None or not isinstance(classifier, nn.Linear):
        return
    if weight.shape[1] != classifier.in_features:
        raise ConfigError(
            f"global_pool={model.pool.kind!r} gives the classifier "
            f"{classifier.in_features} inputs, but the weights' {loaded.num_classes}-class "
            f"classifier takes {weight.shape[1]}: pass num_classes=N (a new head on the "
            f"pretrained backbone) or keep global_pool='avg'"
        )


def record_for(
    model: str, tag: str | None, source: WeightRecord | Path | None
) -> WeightRecord | None:
    """The record that describes a model built as ``model.tag`` from ``source``: the loaded one,
    else the tagged or default record of the name (timm's ``pretrained_cfg`` exists without
    weights too), else None (a custom network or a file)."""
    if isinstance(source, WeightRecord):
        return source
    if isinstance(source, Path):
        return None
    try:
        return find_record(model, tag) if tag else default_record(model)
    except UnknownNameError:
        return None


def weights_for(
    model: str, tag: str | None, pretrained: bool | str | os.PathLike[str] | None
) -> WeightRecord | Path | None:
    """What to load for ``create_model("model.tag", pretrained=...)`` (timm's rules): a tag in
    the name picks the record that ``pretrained=True`` loads; ``pretrained`` may not name other
    weights at the same time."""
    if tag is None:
        return resolve_weights(model, pretrained)
    if pretrained not in (None, False, True):
        raise ConfigError(
            f"{model}.{tag} already names its weights; pass pretrained=True to load them, "
            f"not pretrained={pretrained!r}"
        )
    record = find_record(model, tag)
    return record if pretrained else None


def default_preprocess(model: str, spec: ModelSpec, tag: str | None = None) -> PreprocessConfig:
    """The preprocessing a model name implies without weights: its (tagged or default) record's,
    as timm's ``pretrained_cfg``; else the spec's resolution with the variant's crop."""
    try:
        return (find_record(model, tag) if tag else default_record(model)).preprocess
    except UnknownNameError:
        return PreprocessConfig(input_size=spec.resolution)
