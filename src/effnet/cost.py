"""Exact parameter and multiply-add (MAC) counts, per stage and in total.

MACs are counted the way the papers' "FLOPs" are: one multiply-add per weight per output position of
every convolution and linear layer, plus squeeze-excite's pooling and channel scaling and the final
global pool. BatchNorm (foldable into the conv) and activations are not counted. Shapes come from a
forward pass on the ``meta`` device, so even EfficientNet-L2 at 800 px costs nothing to measure.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from typing import Any

import torch
from torch import nn

from effnet.errors import ConfigError
from effnet.layers import GlobalPool, SqueezeExcite
from effnet.model import EfficientNet, input_size
from effnet.registry import get_spec, list_models
from effnet.scaling import PAPER, Coefficients, multipliers
from effnet.specs import BASES, VARIANTS, ModelSpec, check_input_size, compound, variant_spec

__all__ = [
    "Cost",
    "LadderRow",
    "PartCost",
    "StageRow",
    "Table",
    "count_params",
    "describe",
    "ladder",
    "ladder_tables",
    "ladders",
    "profile",
    "profile_spec",
    "stage_table",
    "variant_costs",
]


@dataclass
class PartCost:
    """Cost of one top-level part of the network (stem, a stage, head, classifier)."""

    name: str
    params: int = 0
    macs: int = 0
    out_shape: tuple[int, ...] = ()


@dataclass
class Cost:
    params: int
    macs: int
    resolution: int
    parts: list[PartCost] = field(default_factory=list)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


_COUNTED = (nn.Conv2d, nn.Linear, SqueezeExcite, nn.AdaptiveAvgPool2d, GlobalPool)


def _module_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """MACs of one leaf module for a batch of one image."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        return out[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    if isinstance(module, SqueezeExcite):
        return 2 * inp[0].numel()  # the global average and the channel-wise rescale
    if isinstance(module, (nn.AdaptiveAvgPool2d, GlobalPool)):
        return inp[0].numel() * (
            2 if getattr(module, "kind", "avg") in ("avgmax", "catavgmax") else 1
        )
    return 0


def _parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level parts in forward order, each stage on its own."""
    parts: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if name == "stages":
            parts.extend((f"stage{i + 1}", stage) for i, stage in enumerate(child))
        else:
            parts.append((name, child))
    return parts


def profile(model: nn.Module, resolution: int | tuple[int, int] | None = None) -> Cost:
    """Count parameters and MACs of ``model`` (any device, ``meta`` included) at one resolution."""
    if resolution is None:
        resolution = input_size(model)
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    first = next(model.parameters())
    in_chans = getattr(model, "in_chans", None) or 3
    x = torch.zeros(1, in_chans, h, w, device=first.device, dtype=first.dtype)

    parts = [PartCost(name, params=count_params(mod)) for name, mod in _parts(model)]
    owner: dict[nn.Module, PartCost] = {}
    for part, (_, mod) in zip(parts, _parts(model)):
        for sub in mod.modules():
            owner[sub] = part
        owner[mod] = part

    handles = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        part = owner.get(module)
        if part is not None:
            part.macs += _module_macs(module, args[0], out)

    def shape_hook(part: PartCost):
        def record(module: nn.Module, args: tuple[torch.Tensor, ...], out: object) -> None:
            if isinstance(out, torch.Tensor):
                part.out_shape = tuple(out.shape[1:])

        return record

    for module in model.modules():
        if isinstance(module, _COUNTED):
            handles.append(module.register_forward_hook(hook))
    for part, (_, mod) in zip(parts, _parts(model)):
        handles.append(mod.register_forward_hook(shape_hook(part)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return Cost(count_params(model), sum(p.macs for p in parts), h, parts)


def profile_spec(spec: ModelSpec, resolution: int | None = None, num_classes: int = 1000) -> Cost:
    """Cost of the network a spec describes, built on the ``meta`` device (no memory or compute)."""
    with torch.device("meta"):
        model = EfficientNet(spec, num_classes=num_classes)
    return profile(model, spec.resolution if resolution is None else resolution)


@dataclass
class LadderRow:
    """One rung of a scaling ladder: a phi, its multipliers and the cost they lead to."""

    phi: float
    name: str
    depth: float
    width: float
    resolution: int
    params: int
    macs: int
    gmacs: float
    ratio: float
    """MACs relative to phi = 0 of the same family."""
    target: float
    """The budget the formula promises: (alpha * beta^2 * gamma^2)^phi, or 2^phi for the table."""

    @property
    def vs_target(self) -> float:
        """ratio / target: 1.0 is exactly on budget^phi."""
        return self.ratio / self.target


def ladder(
    phis: list[float],
    mode: str = "formula",
    coeffs: Coefficients | None = None,
    base: ModelSpec | str = "efficientnet",
    num_classes: int = 1000,
    resolution_multiple: int = 8,
) -> list[LadderRow]:
    """Cost of each phi, from the published variant table (``mode="table"``) or the formula.

    The one ladder: ``effnet scale`` and the lab's ``ladder`` both print it. The formula takes
    any phi >= 0, any coefficients and any base (a key of :data:`BASES` or a spec, e.g. a named
    variant or a scaled-down lab base) and scales by :func:`effnet.specs.compound`; the table
    exists for phi = 0..7 (B0-B7). ``target`` is the per-step budget raised to phi (2^phi for
    the table: the paper aims at 2).
    """
    c = coeffs or PAPER
    base_spec = BASES[base] if isinstance(base, str) else base
    if mode not in ("table", "formula"):
        raise ConfigError(f"mode must be 'table' or 'formula', got {mode!r}")

    def spec_at(phi: float) -> tuple[ModelSpec, float, float, float]:
        if mode == "formula":
            m = multipliers(phi, c)
            spec = compound(phi, c, base_spec, resolution_multiple=resolution_multiple)
            return spec, m.depth, m.width, c.flops_factor
        names = [n for n, v in VARIANTS.items() if v.phi is not None and v.phi == phi]
        if not names:
            known = sorted(v.phi for v in VARIANTS.values() if v.phi is not None)
            raise ConfigError(
                f"the published table has no variant for phi={phi:g} (it has {known}); "
                f"use mode='formula' for other values"
            )
        row = VARIANTS[names[0]]
        return variant_spec(names[0]), row.depth, row.width, 2.0

    zero_macs = profile_spec(spec_at(0.0)[0], num_classes=num_classes).macs
    rows: list[LadderRow] = []
    for phi in sorted(phis):
        spec, depth, width, step = spec_at(phi)
        cost = profile_spec(spec, num_classes=num_classes)
        rows.append(
            LadderRow(
                phi=phi,
                name=spec.name,
                depth=depth,
                width=width,
                resolution=spec.resolution,
                params=cost.params,
                macs=cost.macs,
                gmacs=cost.gmacs,
                ratio=cost.macs / zero_macs,
                target=step**phi,
            )
        )
    return rows


def ladders(
    phis: list[float], mode: str = "both", coeffs: Coefficients = PAPER, base: str = "efficientnet"
) -> dict[str, list[LadderRow]]:
    """``effnet scale``: the :func:`ladder` of ``base`` (any model name or base) from the
    published table, the formula or ``"both"``, by mode. The table exists for the paper's
    coefficients and family only, and for whole phi in 0..7; a mode with no usable phi is left
    out."""
    base_spec = get_spec(base)
    modes = ("table", "formula") if mode == "both" else (mode,)
    if "table" in modes and (coeffs != PAPER or base != "efficientnet"):
        modes = ("formula",)  # the published table only exists for the paper's family
    result = {}
    for m in modes:
        usable = [p for p in phis if m == "formula" or (p == int(p) and 0 <= p <= 7)]
        if usable:
            result[m] = ladder(usable, m, coeffs, base_spec)
    return result


def variant_costs(pattern: str = "*") -> list[dict[str, Any]]:
    """``effnet list``: name, parameters, GMACs and resolution of every registered name that
    matches the shell ``pattern``; none is an error."""
    rows = []
    for name in list_models(pattern):
        spec = get_spec(name)
        cost = profile_spec(spec)
        rows.append(dict(name=name, params=cost.params, gmacs=round(cost.gmacs, 3),
                         resolution=spec.resolution))  # fmt: skip
    if not rows:
        raise ConfigError(f"no model matches {pattern!r}; try 'effnet list' for all of them")
    return rows


@dataclass
class StageRow:
    """One row of ``effnet info``: a stage (or the stem/head) and what it costs."""

    part: str
    block: str
    kernel: int
    stride: int
    expand: float
    channels: int
    repeats: int
    params: int
    macs: int
    output: str


def describe(spec: ModelSpec, resolution: int | None = None) -> tuple[list[StageRow], Cost]:
    """The stage table of a spec: block type, kernel, stride, expand, channels, repeats, cost."""
    if resolution is not None:
        check_input_size(resolution)
    cost = profile_spec(spec, resolution)
    parts = {p.name: p for p in cost.parts}

    def row(
        part: str,
        block: str,
        kernel: int,
        stride: int,
        expand: float,
        channels: int,
        repeats: int,
        *merged: str,
    ) -> StageRow:
        costs = [parts[n] for n in (part, *merged)]
        shape = costs[-1].out_shape
        return StageRow(
            part,
            block,
            kernel,
            stride,
            expand,
            channels,
            repeats,
            sum(c.params for c in costs),
            sum(c.macs for c in costs),
            "x".join(str(s) for s in shape),
        )

    rows = [row("stem", "conv", 3, 2, 1, spec.stem_channels, 1)]
    for i, st in enumerate(spec.stages):
        block = ("MBConv" if st.block == "mbconv" else "FusedMBConv") + (
            f"+SE{st.se_ratio:g}" if st.se_ratio else ""
        )
        rows.append(
            row(
                f"stage{i + 1}", block, st.kernel, st.stride, st.expand, st.out_channels, st.repeats
            )
        )
    rows.append(row("head", "conv", 1, 1, 1, spec.head_channels, 1))
    num_out = parts["classifier"].out_shape[0] if parts["classifier"].out_shape else 0
    rows.append(row("pool", "avgpool+fc", 1, 1, 1, num_out, 1, "dropout", "classifier"))
    return rows, cost


Table = tuple[list[str], list[list[Any]]]
"""Column headers and rows, as ``effnet info`` and ``effnet scale`` print them."""


def stage_table(spec: ModelSpec, rows: list[StageRow], cost: Cost) -> tuple[str, Table]:
    """``effnet info``: a headline (cost, activation, padding, dropout) and the stage table of
    :func:`describe`'s rows."""
    headline = (
        f"{spec.name}: {cost.params:,} parameters, {cost.gmacs:.3f} GMACs at "
        f"{cost.resolution}x{cost.resolution}, {spec.activation}, padding={spec.padding}, "
        f"dropout {spec.dropout}, drop-path {spec.drop_path_rate}"
    )
    headers = ["part", "block", "k", "stride", "expand", "channels", "repeats", "params"]
    cells = [[*astuple(r)[:8], r.macs / 1e6, r.output] for r in rows]
    return headline, ([*headers, "MACs (M)", "output"], cells)


def ladder_tables(
    ladders_by_mode: dict[str, list[LadderRow]], coeffs: Coefficients, base: str
) -> list[tuple[str, Table]]:
    """``effnet scale``: each ladder of :func:`ladders` under a heading that says what it
    follows (the published table, or the formula from ``base``) and the target it meets."""
    c = coeffs
    headers = ["phi", "model", "d", "w", "r", "params", "GMACs", "x phi=0", "target"]
    out = []
    for mode, rows in ladders_by_mode.items():
        heading = (
            "Published variants (B0-B7, hand-rounded table); target = 2^phi"
            if mode == "table"
            else f"Formula from {base}: d = {c.alpha}^phi, w = {c.beta}^phi, r = "
            f"{c.gamma}^phi; target = (alpha*beta^2*gamma^2 = {c.flops_factor:.3f})^phi"
        )
        cells = [[f"{r.phi:g}", *astuple(r)[1:6], *astuple(r)[7:]] for r in rows]
        out.append((heading, (headers, cells)))
    return out
