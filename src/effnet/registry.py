"""Names -> specs, and building a model from a name. One lookup, no indirection.

Every named variant comes from the single table :data:`effnet.specs.VARIANTS`. The name
``"efficientnet"`` (or any base name) with ``phi=`` builds a compound-scaled model by the formula.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable

from torch import nn

from effnet.model import EfficientNet, EfficientNetFeatures
from effnet.scaling import PAPER, Coefficients
from effnet.specs import BASES, VARIANTS, ModelSpec, compound, variant_spec

__all__ = ["build_model", "get_spec", "list_models", "register"]

_REGISTRY: dict[str, Callable[[], ModelSpec]] = {}


def register(name: str, make_spec: Callable[[], ModelSpec]) -> None:
    """Add a named architecture. Names are unique: registering one twice is an error."""
    if name in _REGISTRY:
        raise ValueError(f"a model named {name!r} is already registered; pick another name")
    _REGISTRY[name] = make_spec


for _name in VARIANTS:
    register(_name, lambda n=_name: variant_spec(n))


def list_models(pattern: str = "*") -> list[str]:
    """Registered variant names matching a shell-style ``pattern`` (e.g. ``"*lite*"``), sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


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
    """Resolve a name (or a spec) plus optional compound-scaling and field overrides to a spec.

    - a registered name: that variant (``phi`` not allowed);
    - ``"efficientnet"`` or another base name with ``phi``: the formula, from that base;
    - overrides replace spec fields, e.g. ``padding="same"``, ``bn_eps=1e-5``.
    """
    coeffs_given = any(v is not None for v in (alpha, beta, gamma))
    if isinstance(name, ModelSpec):
        spec = name
    elif name in _REGISTRY:
        if phi is not None or coeffs_given or base is not None:
            raise ValueError(
                f"{name!r} is a fixed variant from the published table; to scale by the formula "
                f"use create_model('efficientnet', phi=...) (optionally with alpha/beta/gamma "
                f"and base=)"
            )
        spec = _REGISTRY[name]()
    elif name in BASES or name == "efficientnet":
        if phi is None:
            if coeffs_given or base is not None:
                raise ValueError(f"{name!r} with alpha/beta/gamma/base also needs phi=")
            phi = 0.0
        coeffs = Coefficients(
            alpha=PAPER.alpha if alpha is None else alpha,
            beta=PAPER.beta if beta is None else beta,
            gamma=PAPER.gamma if gamma is None else gamma,
        )
        if base is None:
            base_spec: ModelSpec = BASES[name]
        elif isinstance(base, ModelSpec):
            base_spec = base
        elif base in BASES:
            base_spec = BASES[base]
        elif base in _REGISTRY:
            base_spec = _REGISTRY[base]()
        else:
            raise KeyError(f"unknown base {base!r}; use one of {sorted(BASES)} or a variant name")
        spec = compound(phi, coeffs, base_spec)
    else:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=4, cutoff=0.6)
        hint = f" Did you mean {', '.join(close[:5])}?" if close else ""
        raise KeyError(
            f"unknown model {name!r}.{hint} effnet.list_models() lists the {len(_REGISTRY)} "
            f"variants; 'efficientnet' with phi= builds any compound coefficient."
        )
    if overrides:
        known = set(ModelSpec.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"unknown option(s) {unknown} for {spec.name}; spec fields you can override: "
                f"{sorted(known - {'name', 'stages', 'rules'})}"
            )
        spec = spec.replace(**overrides)
    return spec


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
    spec = get_spec(name, **spec_options)  # type: ignore[arg-type]
    if features_only:
        return EfficientNetFeatures(spec, tuple(out_indices), in_chans, drop_path_rate)
    return EfficientNet(spec, num_classes, in_chans, drop_rate, drop_path_rate)
