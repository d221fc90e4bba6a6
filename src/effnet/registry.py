"""Names -> specs, and building a model from a name. One lookup, no indirection.

A registered name is a row of :data:`effnet.specs.VARIANTS` in one of
:data:`effnet.specs.FLAVOURS` (``efficientnet_b0``, ``tf_efficientnet_b0``,
``tv_efficientnet_b5``): the name alone fixes the module graph. A base name (``efficientnet``,
``efficientnet_lite``, ``efficientnetv2``; ``tf_`` in front for TF-style layers) with ``phi=``
builds a compound-scaled model by the formula; ``base=`` starts the formula from any variant.
A ``.tag`` after a name (``efficientnet_b0.ra_in1k``) picks weights and never changes the graph.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from torch import nn

from effnet.errors import ConfigError, UnknownNameError, UnknownOptionError, did_you_mean
from effnet.model import EfficientNet, EfficientNetFeatures
from effnet.scaling import PAPER, Coefficients
from effnet.specs import (
    BASES,
    FLAVOURS,
    ModelSpec,
    compound,
    flavoured,
    model_names,
    variant_spec,
)

__all__ = [
    "build_model",
    "get_spec",
    "is_model",
    "list_models",
    "list_pretrained",
    "name_for",
    "register",
    "split_tag",
]

_REGISTRY: dict[str, Callable[[], ModelSpec]] = {}


def register(name: str, make_spec: Callable[[], ModelSpec]) -> None:
    """Add a named architecture. Names are unique: registering one twice is an error."""
    if name in _REGISTRY:
        raise ValueError(f"a model named {name!r} is already registered; pick another name")
    _REGISTRY[name] = make_spec


for _name in model_names():
    register(_name, lambda n=_name: variant_spec(n))


def split_tag(name: str) -> tuple[str, str | None]:
    """``"efficientnet_b0.ra_in1k"`` -> (``"efficientnet_b0"``, ``"ra_in1k"``)."""
    model, dot, tag = name.partition(".")
    return model, (tag if dot and tag else None)


def list_models(
    pattern: str | list[str] = "*",
    pretrained: bool = False,
    include_tags: bool | None = None,
    exclude_filters: str | list[str] = "",
) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"*lite*"``), sorted.

    timm's signature: ``pretrained=True`` keeps names with catalogued weights and, unless
    ``include_tags=False``, lists each weight as ``name.tag``; ``exclude_filters`` drops
    matches. The weight catalog (``effnet.weights.records``) is plain data, read lazily.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    excludes = [exclude_filters] if isinstance(exclude_filters, str) else list(exclude_filters)
    include_tags = pretrained if include_tags is None else include_tags
    names: list[str] = list(_REGISTRY)
    if pretrained or include_tags:
        from effnet.weights.records import list_records

        by_name: dict[str, list[str]] = {}
        for record in list_records():
            by_name.setdefault(record.model, []).append(record.name)
        if pretrained:
            names = [n for n in names if n in by_name]
        if include_tags:
            names = [tagged for n in names for tagged in by_name.get(n, [n])]
    return sorted(
        n
        for n in names
        if any(fnmatch.fnmatch(n, p) or fnmatch.fnmatch(split_tag(n)[0], p) for p in patterns)
        and not any(e and fnmatch.fnmatch(n, e) for e in excludes)
    )


def list_pretrained(pattern: str = "*", exclude_filters: str | list[str] = "") -> list[str]:
    """Every catalogued weight as ``name.tag`` (timm's ``list_pretrained``)."""
    return list_models(pattern, pretrained=True, include_tags=True, exclude_filters=exclude_filters)


def is_model(name: str) -> bool:
    """True for a registered name (with or without a ``.tag``)."""
    return split_tag(name)[0] in _REGISTRY


def _base_names() -> dict[str, ModelSpec]:
    """Formula bases by name, in every flavour: ``efficientnet``, ``tf_efficientnet``, ..."""
    return {  # base=key: a renamed base still finds its table (ModelSpec.root)
        f.prefix + key: flavoured(spec, f, name=f.prefix + key).replace(base=key)
        for f in FLAVOURS.values()
        if f.variants is None
        for key, spec in BASES.items()
    }


def _resolve_base(base: str | ModelSpec | None, default: ModelSpec) -> ModelSpec:
    if base is None:
        return default
    if isinstance(base, ModelSpec):
        return base
    bases = _base_names()
    if base in bases:
        return bases[base]
    if split_tag(base)[0] in _REGISTRY:
        return _REGISTRY[split_tag(base)[0]]()
    raise UnknownNameError(
        f"unknown base {base!r}.{did_you_mean(base, [*bases, *_REGISTRY])} Use a model name "
        f"(effnet.list_models()) or one of {sorted(bases)}"
    )


def get_spec(
    name: str | ModelSpec,
    *,
    phi: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    gamma: float | None = None,
    base: str | ModelSpec | None = None,
    **overrides: object,
) -> ModelSpec:
    """Resolve a name (or a spec) plus optional compound scaling and field overrides to a spec.

    - a registered name (a ``.tag`` is ignored): that variant (``phi`` not allowed);
    - a base name (``efficientnet``, ``tf_efficientnet``, ...) with ``phi``: the formula, from
      that base or from ``base=`` (any model name or spec), by :func:`effnet.specs.compound`;
    - overrides replace spec fields, e.g. ``dropout=0.3``, ``resolution=260``.
    """
    coeffs_given = any(v is not None for v in (alpha, beta, gamma))
    bases = _base_names()
    if isinstance(name, ModelSpec):
        spec = name
    elif split_tag(name)[0] in _REGISTRY:
        if phi is not None or coeffs_given or base is not None:
            raise ConfigError(
                f"{name!r} is a fixed variant from the published table; to scale by the formula "
                f"use create_model('efficientnet', phi=..., base={name!r}) (optionally with "
                f"alpha/beta/gamma)"
            )
        spec = _REGISTRY[split_tag(name)[0]]()
    elif name in bases and phi is None:
        if coeffs_given or base is not None:
            raise ConfigError(f"{name!r} with alpha/beta/gamma/base also needs phi=")
        spec = bases[name]  # the unscaled base (phi = 0)
    elif name in bases:
        coeffs = Coefficients(
            alpha=PAPER.alpha if alpha is None else alpha,
            beta=PAPER.beta if beta is None else beta,
            gamma=PAPER.gamma if gamma is None else gamma,
        )
        spec = compound(phi, coeffs, _resolve_base(base, bases[name]))
    else:
        raise UnknownNameError(
            f"unknown model {name!r}.{did_you_mean(name, [*_REGISTRY, *bases])} "
            f"effnet.list_models() lists the {len(_REGISTRY)} names; 'efficientnet' with phi= "
            f"builds any compound coefficient."
        )
    if overrides:
        known = set(ModelSpec.__dataclass_fields__) - {"name", "stages", "rules", "base"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UnknownOptionError(
                f"unknown option(s) {unknown} for {spec.name}; spec fields you can override: "
                f"{sorted(known)}"
            )
        spec = spec.replace(**overrides)
    return spec


def name_for(spec: ModelSpec) -> str | None:
    """The registered name whose network ``spec`` is (names and dropout aside), if any."""
    for name in _REGISTRY:
        if _REGISTRY[name]().same_network(spec):
            return name
    return None


def build_model(
    name: str | ModelSpec,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    **spec_options: object,
) -> nn.Module:
    """Build an untrained model (the architecture only). ``effnet.create_model`` adds weights."""
    spec = get_spec(name, **spec_options)
    if features_only:
        return EfficientNetFeatures(spec, tuple(out_indices), in_chans, drop_path_rate)
    return EfficientNet(spec, num_classes, in_chans, drop_rate, drop_path_rate)
