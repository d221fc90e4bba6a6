"""The models a scaling experiment compares, built from one base and measured, never assumed.

* :class:`LabBase` is the network everything is scaled from: a named variant or base, optionally
  scaled *down* first (narrower, shallower, lower resolution) so an experiment fits a laptop.
* :func:`family_spec` is compound scaling from that base (depth alpha^phi, width beta^phi,
  resolution gamma^phi); :func:`phi1_candidates` builds the phi = 1 model of every coefficient
  triple of a search and measures how far its MACs land from the budget.
* :func:`match_macs` builds a depth-only, width-only, resolution-only or compound model whose
  *measured* MACs hit a multiple of the base's: channel rounding, ``ceil`` on repeats and the
  resolution grid make the closed form (MACs ~ d * w^2 * r^2) inexact, so the one free
  multiplier is found by bisection on :func:`effnet.cost.profile_spec`.

Every model is built by the core's one scaling rule (:func:`effnet.specs.rescale` and
:func:`effnet.specs.compound`): multipliers compose with the base's own, the way the B1-B7 rows are
multipliers of B0 (a base made of B0 at width 0.5 scaled by 1.1 is B0 at width 0.55), rounded once
from the base table. ``create_model("efficientnet", phi=..., base=...)`` and ``effnet scale`` give
the same networks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from effnet.cost import LadderRow, ladder, profile_spec
from effnet.errors import ConfigError, UnknownNameError, did_you_mean
from effnet.registry import get_spec, list_models
from effnet.scaling import PAPER, Coefficients, multipliers, round_resolution
from effnet.specs import BASES, FLAVOURS, ModelSpec, compound, flavoured, rescale, scale

__all__ = [
    "STRATEGIES",
    "Candidate",
    "LabBase",
    "architecture_key",
    "family_ladder",
    "family_spec",
    "match_macs",
    "measure",
    "phi1_candidates",
    "resolve_base",
]

STRATEGIES = ("depth", "width", "resolution", "compound")
"""The scaling strategies of the paper's Figure 3 (one dimension each) and Figure 8."""

_BISECT_STEPS = 14  # 2^-14 of the bracket: finer than any rounding step that matters


@dataclass(frozen=True)
class LabBase:
    """The base network: ``root`` (a key of :data:`effnet.specs.BASES`) scaled by ``width``,
    ``depth`` and shown at ``resolution`` pixels.

    ``origin`` is what the user named (``efficientnet_b0``); ``scaled_down`` says whether the
    base was made smaller than that on purpose, which every report states.
    """

    root: str
    width: float = 1.0
    depth: float = 1.0
    resolution: int = 224
    origin: str = ""
    origin_width: float = 1.0
    origin_depth: float = 1.0
    origin_resolution: int = 224
    resolution_multiple: int = 8
    """Scaled resolutions are rounded to a multiple of this (the library's rule is 8)."""
    flavour: str = ""
    """The name prefix whose padding and BatchNorm the family uses ("" or "tf_")."""

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise ConfigError(f"unknown flavour {self.flavour!r}; expected one of {list(FLAVOURS)}")
        if self.root not in BASES:
            raise ConfigError(f"unknown root base {self.root!r}; expected one of {sorted(BASES)}")
        if self.width <= 0 or self.depth <= 0 or self.resolution < 8:
            raise ConfigError(
                f"base width and depth must be > 0 and resolution >= 8 px, got width="
                f"{self.width}, depth={self.depth}, resolution={self.resolution}"
            )
        if self.resolution_multiple < 1:
            raise ConfigError(f"resolution_multiple must be >= 1, got {self.resolution_multiple}")

    @property
    def scaled_down(self) -> bool:
        return (
            self.width < self.origin_width
            or self.depth < self.origin_depth
            or self.resolution < self.origin_resolution
        )

    @property
    def name(self) -> str:
        origin = self.origin or self.root
        if not self.scaled_down:
            return origin
        return (
            f"{origin}[w{self.width / self.origin_width:g},d{self.depth / self.origin_depth:g},"
            f"r{self.resolution}]"
        )

    def describe(self) -> str:
        """One line for reports: what the base is and whether it was scaled down."""
        origin = self.origin or self.root
        if not self.scaled_down:
            return f"base {origin} at {self.resolution}px (not scaled down)"
        return (
            f"base SCALED DOWN from {origin} (width x{self.width / self.origin_width:g}, depth "
            f"x{self.depth / self.origin_depth:g}, {self.origin_resolution}px -> "
            f"{self.resolution}px) so the experiment fits a small machine; results describe "
            f"this small family, not {origin} itself"
        )

    def base_spec(self) -> ModelSpec:
        """The base itself as a spec, rounded once from the root table."""
        spec = scale(BASES[self.root], self.width, self.depth, self.resolution, name=self.name)
        return flavoured(spec, FLAVOURS[self.flavour])

    def spec(
        self,
        depth: float = 1.0,
        width: float = 1.0,
        resolution: int | None = None,
        name: str | None = None,
    ) -> ModelSpec:
        """The base scaled by ``depth`` and ``width`` (relative to the base), at ``resolution``
        pixels (default: the base's), by the core's one rule (:func:`effnet.specs.rescale`)."""
        return rescale(
            self.base_spec(),
            width=width,
            depth=depth,
            resolution=resolution,
            name=name or f"{self.name}_d{depth:.4g}_w{width:.4g}_r{resolution or self.resolution}",
        )

    def scaled_resolution(self, multiplier: float) -> int:
        return round_resolution(self.resolution, multiplier, self.resolution_multiple)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "root": self.root,
            "origin": self.origin or self.root,
            "width": self.width,
            "depth": self.depth,
            "resolution": self.resolution,
            "scaled_down": self.scaled_down,
            "resolution_multiple": self.resolution_multiple,
        }


def resolve_base(
    name: str | ModelSpec = "efficientnet_b0",
    width: float = 1.0,
    depth: float = 1.0,
    resolution: int | None = None,
    resolution_multiple: int = 8,
) -> LabBase:
    """A :class:`LabBase` from a registered variant (``efficientnet_b0``), a base name
    (``efficientnet``) or a spec built by :func:`effnet.specs.scale`, optionally scaled down by
    ``width`` and ``depth`` (multipliers) and shown at ``resolution`` pixels."""
    if isinstance(name, ModelSpec):
        spec, origin = name, name.name
    elif name in BASES:
        spec, origin = BASES[name], name
    else:
        try:
            spec, origin = get_spec(name), name
        except KeyError:
            raise UnknownNameError(
                f"unknown base {name!r}.{did_you_mean(name, [*list_models(), *BASES])} Use a "
                f"model name ({', '.join(list_models('efficientnet_b*'))}, ...) or one of "
                f"{sorted(BASES)}"
            ) from None
    root = spec.base or spec.name
    if root not in BASES or scale(BASES[root], spec.width, spec.depth).stages != spec.stages:
        raise ConfigError(
            f"base {spec.name!r} is not a width/depth scaling of a base in effnet.specs.BASES "
            f"({sorted(BASES)}), so the lab cannot rebuild it at other sizes; build it with "
            f"effnet.specs.scale(BASES[...], width=..., depth=...)"
        )
    flavour = next(
        (p for p, f in FLAVOURS.items() if (f.padding, f.bn_eps) == (spec.padding, spec.bn_eps)),
        "",
    )
    return LabBase(
        root=root,
        width=spec.width * width,
        depth=spec.depth * depth,
        resolution=resolution or spec.resolution,
        origin=origin,
        origin_width=spec.width,
        origin_depth=spec.depth,
        origin_resolution=spec.resolution,
        resolution_multiple=resolution_multiple,
        flavour=flavour,
    )


def family_spec(phi: float, coeffs: Coefficients = PAPER, base: LabBase | None = None) -> ModelSpec:
    """Compound scaling from ``base``: depth alpha^phi, width beta^phi, resolution gamma^phi."""
    base = base or resolve_base("efficientnet_b0")
    return compound(
        phi,
        coeffs,
        base.base_spec(),
        name=f"{base.name}_phi{phi:.4g}_a{coeffs.alpha:g}_b{coeffs.beta:g}_g{coeffs.gamma:g}",
        resolution_multiple=base.resolution_multiple,
    )


# Measuring a spec builds it on the meta device (~0.1 s); bisection and ladders ask for the same
# spec many times, so measurements are memoised on the architecture (not the name).
_MEASURED: dict[tuple[object, ...], tuple[int, int]] = {}


def architecture_key(spec: ModelSpec) -> ModelSpec:
    """``spec`` without its name and bookkeeping: two specs with equal keys build the same
    network at the same resolution (on a small base, several coefficient triples round to one
    model, and the lab trains it once)."""
    return spec.replace(name="", dropout=0.0, width=1.0, depth=1.0)


def _arch_key(spec: ModelSpec, num_classes: int) -> tuple[object, ...]:
    return (architecture_key(spec), num_classes)


def measure(spec: ModelSpec, num_classes: int = 1000) -> tuple[int, int]:
    """(params, MACs) of ``spec`` at its resolution, counted by :func:`profile_spec`."""
    key = _arch_key(spec, num_classes)
    if key not in _MEASURED:
        cost = profile_spec(spec, num_classes=num_classes)
        _MEASURED[key] = (cost.params, cost.macs)
    return _MEASURED[key]


@dataclass
class Candidate:
    """One model of an experiment: how it was scaled and what it measurably costs."""

    strategy: str
    """``depth``, ``width``, ``resolution``, ``compound`` or ``base``."""
    target: float
    """The compute multiple it was built for (MACs of the base x target)."""
    spec: ModelSpec
    params: int
    macs: int
    ratio: float
    """Measured MACs / measured MACs of the base."""
    depth: float = 1.0
    width: float = 1.0
    resolution: int = 0
    phi: float | None = None
    coefficients: Coefficients | None = None
    tolerance: float = 0.05

    @property
    def error(self) -> float:
        """Relative distance of the measured ratio from the target (+0.03 = 3% over)."""
        return self.ratio / self.target - 1.0

    @property
    def matched(self) -> bool:
        return abs(self.error) <= self.tolerance + 1e-12

    def to_dict(self) -> dict[str, object]:
        return {
            "strategy": self.strategy,
            "target": self.target,
            "name": self.spec.name,
            "depth": round(self.depth, 6),
            "width": round(self.width, 6),
            "resolution": self.resolution,
            "phi": None if self.phi is None else round(self.phi, 6),
            "alpha": self.coefficients.alpha if self.coefficients else None,
            "beta": self.coefficients.beta if self.coefficients else None,
            "gamma": self.coefficients.gamma if self.coefficients else None,
            "params": self.params,
            "macs": self.macs,
            "macs_ratio": round(self.ratio, 5),
            "macs_error": round(self.error, 5),
            "matched": self.matched,
        }


def _candidate(
    strategy: str,
    target: float,
    spec: ModelSpec,
    base_macs: int,
    num_classes: int,
    tolerance: float,
    **how: object,
) -> Candidate:
    params, macs = measure(spec, num_classes)
    return Candidate(
        strategy, target, spec, params, macs, macs / base_macs, tolerance=tolerance, **how
    )


def base_candidate(base: LabBase, num_classes: int = 1000) -> Candidate:
    """The base itself: the 1x point every strategy's curve starts from."""
    spec = base.spec(name=base.name)
    params, macs = measure(spec, num_classes)
    return Candidate("base", 1.0, spec, params, macs, 1.0, resolution=base.resolution, phi=0.0)


@dataclass
class _Knob:
    """How one strategy turns a single number into a model."""

    build: Callable[[float], ModelSpec]
    how: Callable[[float], dict[str, object]]
    low: float
    first_high: float


def _knob(base: LabBase, strategy: str, target: float, coeffs: Coefficients) -> _Knob:
    if strategy == "depth":
        return _Knob(
            lambda t: base.spec(depth=t),
            lambda t: {"depth": t, "resolution": base.resolution},
            1.0,
            target,
        )
    if strategy == "width":
        return _Knob(
            lambda t: base.spec(width=t),
            lambda t: {"width": t, "resolution": base.resolution},
            1.0,
            math.sqrt(target),
        )
    if strategy == "resolution":
        return _Knob(
            lambda t: base.spec(resolution=base.scaled_resolution(t)),
            lambda t: {"resolution": base.scaled_resolution(t)},
            1.0,
            math.sqrt(target),
        )
    if strategy == "compound":

        def how(phi: float) -> dict[str, object]:
            m = multipliers(phi, coeffs)
            return {
                "depth": m.depth,
                "width": m.width,
                "resolution": base.scaled_resolution(m.resolution),
                "phi": phi,
                "coefficients": coeffs,
            }

        return _Knob(
            lambda phi: family_spec(phi, coeffs, base),
            how,
            0.0,
            math.log(target) / math.log(coeffs.flops_factor),
        )
    raise UnknownNameError(
        f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}"
    )


def match_macs(
    base: LabBase,
    strategy: str,
    target: float,
    *,
    coeffs: Coefficients = PAPER,
    tolerance: float = 0.05,
    num_classes: int = 1000,
) -> Candidate:
    """The ``strategy`` model whose measured MACs are closest to ``target`` x the base's.

    MACs only grow with the multiplier, in steps (rounding), so bisection brackets the first
    step at or above the target; of the models just below and just above it, the closer one (in
    log ratio) wins. Check :attr:`Candidate.matched`: a step can straddle the tolerance window
    (depth-only on a 10-block base cannot add a fraction of a block).
    """
    if not target > 1.0:
        raise ConfigError(f"a compute target is a multiple of the base's MACs > 1, got {target}")
    knob = _knob(base, strategy, target, coeffs)
    base_macs = base_candidate(base, num_classes).macs

    def ratio(t: float) -> float:
        return measure(knob.build(t), num_classes)[1] / base_macs

    low, high = knob.low, max(knob.first_high, knob.low + 1e-3)
    for _ in range(12):  # the closed-form guess undershoots when fixed costs (stem, head) dominate
        if ratio(high) >= target:
            break
        low, high = high, high * 2 if high > 0 else 1.0
    else:
        raise ConfigError(
            f"{strategy}-only scaling of {base.name} never reached {target:g}x its MACs "
            f"(x{ratio(high):.2f} at multiplier {high:g}); use a smaller target"
        )
    for _ in range(_BISECT_STEPS):
        mid = (low + high) / 2
        if ratio(mid) >= target:
            high = mid
        else:
            low = mid
    best = min((low, high), key=lambda t: abs(math.log(ratio(t) / target)))
    return _candidate(
        strategy,
        target,
        knob.build(best),
        base_macs,
        num_classes,
        tolerance,
        **knob.how(best),
    )


def phi1_candidates(
    base: LabBase,
    coefficients: Sequence[Coefficients],
    budget: float = 2.0,
    tolerance: float = 0.25,
    num_classes: int = 1000,
) -> list[Candidate]:
    """The phi = 1 model of each triple, its measured MACs ratio against ``budget`` and whether
    that lies within ``tolerance`` (rounding alone puts B0's phi = 1 at 2.23x for the paper's
    1.92, hence a wider window than the formula's)."""
    base_macs = base_candidate(base, num_classes).macs
    out = []
    for c in coefficients:
        m = multipliers(1.0, c)
        out.append(
            _candidate(
                "compound",
                budget,
                family_spec(1.0, c, base),
                base_macs,
                num_classes,
                tolerance,
                depth=m.depth,
                width=m.width,
                resolution=base.scaled_resolution(m.resolution),
                phi=1.0,
                coefficients=c,
            )
        )
    return out


def family_ladder(
    phis: Sequence[float],
    coeffs: Coefficients = PAPER,
    base: LabBase | None = None,
    num_classes: int = 1000,
) -> list[LadderRow]:
    """Params, MACs and resolution of the family at each phi, with MACs relative to phi = 0
    next to the promise (alpha * beta^2 * gamma^2)^phi: :func:`effnet.cost.ladder` from the
    lab's base."""
    base = base or resolve_base("efficientnet_b0")
    return ladder(
        list(phis),
        "formula",
        coeffs,
        base.base_spec(),
        num_classes=num_classes,
        resolution_multiple=base.resolution_multiple,
    )
