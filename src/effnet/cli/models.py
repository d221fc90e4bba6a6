"""``effnet list``, ``effnet info NAME`` and ``effnet scale --phi 0..7``."""

from __future__ import annotations

import argparse
from dataclasses import astuple

from effnet.cli.flags import add_command
from effnet.cli.output import format_table, print_json
from effnet.cost import describe, ladder, profile_spec
from effnet.errors import ConfigError
from effnet.registry import get_spec, list_models
from effnet.scaling import PAPER, Coefficients, parse_phis

_LIST = ["model", "params", "GMACs", "resolution"]
_INFO = ["part", "block", "k", "stride", "expand", "channels", "repeats", "params", "MACs (M)"]
_LADDER = ["phi", "model", "d", "w", "r", "params", "GMACs", "x phi=0", "target"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_list)
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. '*lite*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = add_command(sub, cmd_info)
    p.add_argument("name", help="a variant name, e.g. efficientnet_b0")
    p.add_argument("--resolution", type=int, help="input size in pixels (default: the variant's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = add_command(sub, cmd_scale)
    p.add_argument("--phi", default="0..7", help="'0..7', '0,1,2.5' or '3' (default 0..7)")
    modes = ("both", "table", "formula")
    p.add_argument("--mode", choices=modes, default="both", help="the published table, the pure "
                   "formula, or both (default)")  # fmt: skip
    p.add_argument("--alpha", type=float, default=PAPER.alpha, help="depth coefficient (1.2)")
    p.add_argument("--beta", type=float, default=PAPER.beta, help="width coefficient (1.1)")
    p.add_argument("--gamma", type=float, default=PAPER.gamma, help="resolution coefficient (1.15)")
    p.add_argument("--base", default="efficientnet", help="what to scale in formula mode: a base "
                   "(efficientnet, tf_efficientnet, efficientnet_lite, ...) or any model name, "
                   "e.g. efficientnet_b3")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def cmd_list(args: argparse.Namespace) -> int:
    """List the model variants with their parameters, GMACs and resolution.

    Examples:
      effnet list '*lite*'
      effnet list 'tf_efficientnetv2_*' --json
    """
    rows = []
    for name in list_models(args.pattern):
        spec = get_spec(name)
        cost = profile_spec(spec)
        rows.append(dict(name=name, params=cost.params, gmacs=round(cost.gmacs, 3),
                         resolution=spec.resolution))  # fmt: skip
    if not rows:
        raise ConfigError(f"no model matches {args.pattern!r}; try 'effnet list' for all of them")
    if args.json:
        print_json(rows)
    else:
        print(format_table(_LIST, [[*r.values()] for r in rows]))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Stage-by-stage table of a variant: blocks, kernel, stride, channels, params, MACs.

    Examples:
      effnet info efficientnet_b0
      effnet info tf_efficientnetv2_s --resolution 384
    """
    spec = get_spec(args.name)
    rows, cost = describe(spec, args.resolution)
    if args.json:
        print_json(dict(name=spec.name, resolution=cost.resolution, params=cost.params,
                        macs=cost.macs, stages=rows))  # fmt: skip
        return 0
    print(
        f"{spec.name}: {cost.params:,} parameters, {cost.gmacs:.3f} GMACs at "
        f"{cost.resolution}x{cost.resolution}, {spec.activation}, padding={spec.padding}, "
        f"dropout {spec.dropout}, drop-path {spec.drop_path_rate}"
    )
    cells = [[*astuple(r)[:8], r.macs / 1e6, r.output] for r in rows]
    print(format_table([*_INFO, "output"], cells))
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    """The compound-scaling ladder: depth, width, resolution, params and GMACs per phi.

    Cost of each phi from the published B0-B7 table and from the pure formula d = alpha^phi,
    w = beta^phi, r = gamma^phi.

    Examples:
      effnet scale --phi 0..7
      effnet scale --base efficientnet_b3 --phi 0..2 --json
    """
    phis, c = parse_phis(args.phi), Coefficients(args.alpha, args.beta, args.gamma)
    base = get_spec(args.base)  # any model name or base the lab and create_model accept
    modes = ("table", "formula") if args.mode == "both" else (args.mode,)
    if "table" in modes and (c != PAPER or args.base != "efficientnet"):
        modes = ("formula",)  # the published table only exists for the paper's family
    result = {}
    for mode in modes:
        usable = [p for p in phis if mode == "formula" or (p == int(p) and 0 <= p <= 7)]
        if usable:
            result[mode] = ladder(usable, mode, c, base)
    if args.json:
        print_json(dict(alpha=c.alpha, beta=c.beta, gamma=c.gamma, flops_factor=c.flops_factor,
                        **result))  # fmt: skip
        return 0
    for mode, rows in result.items():
        print(
            "Published variants (B0-B7, hand-rounded table); target = 2^phi"
            if mode == "table"
            else f"Formula from {args.base}: d = {c.alpha}^phi, w = {c.beta}^phi, r = "
            f"{c.gamma}^phi; target = (alpha*beta^2*gamma^2 = {c.flops_factor:.3f})^phi"
        )
        cells = [[f"{r.phi:g}", *astuple(r)[1:6], *astuple(r)[7:]] for r in rows]
        print(format_table(_LADDER, cells) + "\n")
    return 0
