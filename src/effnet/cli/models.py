"""``effnet list``, ``effnet info NAME`` and ``effnet scale --phi 0..7``."""

from __future__ import annotations

import argparse

from effnet.cli.output import format_table, print_json
from effnet.cost import describe, ladder, profile_spec
from effnet.errors import ConfigError
from effnet.registry import get_spec, list_models
from effnet.scaling import PAPER, Coefficients, parse_phis


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the model variants with params, GMACs and resolution")
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. '*lite*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="stage-by-stage table of a variant: blocks, params, MACs")
    p.add_argument("name", help="a variant name, e.g. efficientnet_b0")
    p.add_argument("--resolution", type=int, help="input size in pixels (default: the variant's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "scale",
        help="the compound-scaling ladder: d, w, r, params, GMACs per phi",
        description="Cost of each phi from the published B0-B7 table and from the pure formula "
        "d = alpha^phi, w = beta^phi, r = gamma^phi.",
    )
    p.add_argument("--phi", default="0..7", help="'0..7', '0,1,2.5' or '3' (default 0..7)")
    p.add_argument("--mode", choices=("both", "table", "formula"), default="both")
    p.add_argument("--alpha", type=float, default=PAPER.alpha, help="depth coefficient (1.2)")
    p.add_argument("--beta", type=float, default=PAPER.beta, help="width coefficient (1.1)")
    p.add_argument("--gamma", type=float, default=PAPER.gamma, help="resolution coefficient (1.15)")
    p.add_argument(
        "--base",
        default="efficientnet",
        help="what to scale in formula mode: a base (efficientnet, tf_efficientnet, "
        "efficientnet_lite, ...) or any model name, e.g. efficientnet_b3",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_scale)


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in list_models(args.pattern):
        spec = get_spec(name)
        cost = profile_spec(spec)
        rows.append(
            {
                "name": name,
                "params": cost.params,
                "gmacs": round(cost.gmacs, 3),
                "resolution": spec.resolution,
            }
        )
    if not rows:
        raise ConfigError(f"no model matches {args.pattern!r}; try 'effnet list' for all of them")
    if args.json:
        print_json(rows)
    else:
        print(
            format_table(
                ["model", "params", "GMACs", "resolution"], [list(r.values()) for r in rows]
            )
        )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    spec = get_spec(args.name)
    rows, cost = describe(spec, args.resolution)
    if args.json:
        print_json(
            {
                "name": spec.name,
                "resolution": cost.resolution,
                "params": cost.params,
                "macs": cost.macs,
                "stages": rows,
            }
        )
        return 0
    print(
        f"{spec.name}: {cost.params:,} parameters, {cost.gmacs:.3f} GMACs at "
        f"{cost.resolution}x{cost.resolution}, {spec.activation}, padding={spec.padding}, "
        f"dropout {spec.dropout}, drop-path {spec.drop_path_rate}"
    )
    print(
        format_table(
            [
                "part",
                "block",
                "k",
                "stride",
                "expand",
                "channels",
                "repeats",
                "params",
                "MACs (M)",
                "output",
            ],
            [
                [
                    r.part,
                    r.block,
                    r.kernel,
                    r.stride,
                    r.expand,
                    r.channels,
                    r.repeats,
                    r.params,
                    r.macs / 1e6,
                    r.output,
                ]
                for r in rows
            ],
        )
    )
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    phis = parse_phis(args.phi)
    coeffs = Coefficients(args.alpha, args.beta, args.gamma)
    base = get_spec(args.base)  # any model name or base the lab and create_model accept
    modes = ("table", "formula") if args.mode == "both" else (args.mode,)
    if "table" in modes and (coeffs != PAPER or args.base != "efficientnet"):
        modes = ("formula",)  # the published table only exists for the paper's family
    result = {}
    for mode in modes:
        usable = [p for p in phis if mode == "formula" or (p == int(p) and 0 <= p <= 7)]
        if usable:
            result[mode] = ladder(usable, mode, coeffs, base)
    if args.json:
        print_json(
            {
                "alpha": coeffs.alpha,
                "beta": coeffs.beta,
                "gamma": coeffs.gamma,
                "flops_factor": coeffs.flops_factor,
                **result,
            }
        )
        return 0
    for mode, rows in result.items():
        if mode == "table":
            title = "Published variants (B0-B7, hand-rounded table); target = 2^phi"
        else:
            title = (
                f"Formula from {args.base}: d = {coeffs.alpha}^phi, w = {coeffs.beta}^phi, "
                f"r = {coeffs.gamma}^phi; target = (alpha*beta^2*gamma^2 = "
                f"{coeffs.flops_factor:.3f})^phi"
            )
        print(title)
        print(
            format_table(
                ["phi", "model", "d", "w", "r", "params", "GMACs", "x phi=0", "target"],
                [
                    [
                        f"{r.phi:g}",
                        r.name,
                        r.depth,
                        r.width,
                        r.resolution,
                        r.params,
                        r.gmacs,
                        r.ratio,
                        r.target,
                    ]
                    for r in rows
                ],
            )
        )
        print()
    return 0
