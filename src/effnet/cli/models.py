"""``effnet list``, ``effnet info NAME`` and ``effnet scale --phi 0..7``."""

from __future__ import annotations

import argparse

from effnet.cli.flags import add_command, add_json
from effnet.cli.output import format_table, print_json
from effnet.cost import describe, ladder_tables, ladders, stage_table, variant_costs
from effnet.registry import get_spec
from effnet.scaling import PAPER, Coefficients, parse_phis

_LIST = ["model", "params", "GMACs", "resolution"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_list)
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. '*lite*'")
    add_json(p, "a table")
    p = add_command(sub, cmd_info)
    p.add_argument("name", help="a variant name, e.g. efficientnet_b0")
    p.add_argument("--resolution", type=int, help="input size in pixels (default: the variant's)")
    add_json(p, "a table")
    p = add_command(sub, cmd_scale)
    p.add_argument("--phi", default="0..7", help="'0..7', '0,1,2.5' or '3' (default 0..7)")
    modes = ("both", "table", "formula")
    p.add_argument("--mode", choices=modes, default="both", help="the published table, the pure "
                   "formula, or both (default)")  # fmt: skip
    add_coefficients(p)
    p.add_argument("--base", default="efficientnet", help="what to scale in formula mode: a base "
                   "(efficientnet, tf_efficientnet, efficientnet_lite, ...) or any model name, "
                   "e.g. efficientnet_b3")  # fmt: skip
    add_json(p, "tables")


def add_coefficients(p: argparse.ArgumentParser) -> None:
    """--alpha, --beta, --gamma: the compound-scaling coefficients (``effnet scale``, the lab)."""
    p.add_argument("--alpha", type=float, default=PAPER.alpha, help="depth coefficient (1.2)")
    p.add_argument("--beta", type=float, default=PAPER.beta, help="width coefficient (1.1)")
    p.add_argument("--gamma", type=float, default=PAPER.gamma, help="resolution coefficient (1.15)")


def coefficients(args: argparse.Namespace) -> Coefficients:
    return Coefficients(args.alpha, args.beta, args.gamma)


def cmd_list(args: argparse.Namespace) -> int:
    """List the model variants with their parameters, GMACs and resolution.

    Examples:
      effnet list '*lite*'
      effnet list 'tf_efficientnetv2_*' --json
    """
    rows = variant_costs(args.pattern)
    if args.json:
        return print_json(rows)
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
        return print_json(dict(name=spec.name, resolution=cost.resolution, params=cost.params,
                               macs=cost.macs, stages=rows))  # fmt: skip
    headline, table = stage_table(spec, rows, cost)
    print(headline + "\n" + format_table(*table))
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    """The compound-scaling ladder: depth, width, resolution, params and GMACs per phi.

    Cost of each phi from the published B0-B7 table and from the pure formula d = alpha^phi,
    w = beta^phi, r = gamma^phi.

    Examples:
      effnet scale --phi 0..7
      effnet scale --base efficientnet_b3 --phi 0..2 --json
    """
    c = coefficients(args)
    result = ladders(parse_phis(args.phi), args.mode, c, args.base)
    if args.json:
        return print_json(dict(alpha=c.alpha, beta=c.beta, gamma=c.gamma,
                               flops_factor=c.flops_factor, **result))  # fmt: skip
    for heading, table in ladder_tables(result, c, args.base):
        print(heading + "\n" + format_table(*table) + "\n")
    return 0
