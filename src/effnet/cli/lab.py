"""``effnet lab search``, ``effnet lab compare`` and ``effnet lab ladder``: the scaling lab."""

from __future__ import annotations

import argparse
import dataclasses

from effnet.cli.flags import add_command, add_flags, given
from effnet.cli.output import format_table, print_json
from effnet.errors import ConfigError
from effnet.lab import (
    STRATEGIES,
    DataConfig,
    Grid,
    Recipe,
    RunOptions,
    compare,
    family_ladder,
    search,
    tables,
)
from effnet.lab.tables import BaseOptions
from effnet.scaling import PAPER, Coefficients, parse_phis

_DESCRIPTION = (
    "Run the paper's scaling experiments on your own data and hardware. Trials run serially, in "
    "a process pool or on Ray; results land in one directory and a re-run resumes, skipping "
    "finished trials."
)


def add_commands(sub: argparse._SubParsersAction) -> None:
    summary = "scaling experiments: search alpha/beta/gamma, compound vs one-dimensional scaling"
    lab = sub.add_parser("lab", help=summary, description=_DESCRIPTION)
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)
    p = add_command(lab_sub, cmd_search)
    _add_experiment(p)
    p.add_argument("--budget", type=float, default=2.0, help="compute growth per phi (2.0)")
    p.add_argument("--tolerance", type=float, default=0.05, help="on a*b^2*g^2 (0.05)")
    p.add_argument("--grid", default="", help="axes to change, e.g. 'alpha=1.1:1.3 beta=1.0,1.1'")
    p.add_argument(
        "--macs-tolerance",
        type=float,
        default=0.25,
        help="train only phi = 1 models within this of budget x the base's MACs (0.25)",
    )
    p = add_command(lab_sub, cmd_compare)
    _add_experiment(p)
    p.add_argument("--targets", default="2,4", help="compute multiples of the base (2,4)")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="which curves")
    p.add_argument("--tolerance", type=float, default=0.05, help="MACs match tolerance (0.05)")
    _add_coefficients(p)
    p = add_command(lab_sub, cmd_ladder)
    add_flags(p.add_argument_group("base network"), BaseOptions)
    _add_coefficients(p)
    p.add_argument("--phi", default="0..4", help="'0..4' or '0,1,2.5' (default 0..4)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier size (1000)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_coefficients(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=float, default=PAPER.alpha, help="depth coefficient (1.2)")
    p.add_argument("--beta", type=float, default=PAPER.beta, help="width coefficient (1.1)")
    p.add_argument("--gamma", type=float, default=PAPER.gamma, help="resolution coefficient (1.15)")


def _add_experiment(p: argparse.ArgumentParser) -> None:
    add_flags(p.add_argument_group("data"), DataConfig)
    add_flags(p.add_argument_group("base network"), BaseOptions)
    g = p.add_argument_group("training recipe (the same for every trial)")
    add_flags(g, Recipe)
    g.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1 (mean and spread)")
    g = p.add_argument_group("execution")
    add_flags(g, RunOptions)
    g.set_defaults(backend="process")  # a command runs on all the cores; the library, serially
    g.add_argument("--out", help="results directory (default runs/lab-<command>-<data>)")
    g.add_argument("--dry-run", action="store_true", help="show the models, train nothing")
    g.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _numbers(text: str, flag: str, kind: type = float) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or (kind is int and len(set(values)) != len(values)):
        what = (
            "distinct whole numbers like 0,1" if kind is int else "comma-separated numbers like 2,4"
        )
        raise ConfigError(f"{flag} expects {what}, got {text!r}")
    return values


def _common(args: argparse.Namespace) -> dict:
    return {
        "data": DataConfig(**given(args, DataConfig)),
        "base": BaseOptions(**given(args, BaseOptions)).resolve(),
        "out_dir": args.out,
        "recipe": Recipe(**given(args, Recipe)),
        "seeds": _numbers(args.seeds, "--seeds", int),
        "run": RunOptions(**given(args, RunOptions)),
        "dry_run": args.dry_run,
    }


def cmd_search(args: argparse.Namespace) -> int:
    """Grid-search (alpha, beta, gamma) at phi = 1 under alpha*beta^2*gamma^2 ~= budget.

    Enumerate coefficient triples near the paper's under the budget, build each phi = 1 model
    from the base, measure its MACs, train the ones on budget under one short recipe and rank
    them by validation accuracy.
    """
    grid = Grid.parse(args.grid) if args.grid.strip() else None
    result = search(
        **_common(args),
        budget=args.budget,
        tolerance=args.tolerance,
        grid=grid,
        macs_tolerance=args.macs_tolerance,
    )
    if args.json:
        print_json(result.to_dict())
        return 0
    print(result.base.describe())
    headline, plan, footer = tables.search_plan(result, args.tolerance, args.macs_tolerance)
    print("\n".join([headline, format_table(*plan), footer]))
    if args.dry_run:
        return 0
    print("\n" + format_table(*tables.search_ranking(result)))
    base = BaseOptions(**given(args, BaseOptions))
    print(
        "\n".join(tables.run_lines(result.report, result.files) + tables.winner_lines(result, base))
    )
    return 0 if result.winner else 1


def cmd_compare(args: argparse.Namespace) -> int:
    """Depth-, width-, resolution-only and compound models at matched MACs.

    At each compute target (a multiple of the base's measured MACs) build a depth-only,
    width-only, resolution-only and compound model within --tolerance of it, train them and the
    base under one recipe, and plot accuracy against MACs.
    """
    result = compare(
        **_common(args),
        targets=_numbers(args.targets, "--targets"),
        strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
        coeffs=Coefficients(args.alpha, args.beta, args.gamma),
        tolerance=args.tolerance,
    )
    if args.json:
        print_json(result.to_dict())
        return 0
    print(result.base.describe())
    if args.dry_run:
        plan, footer = tables.compare_plan(result)
        print(format_table(*plan) + "\n" + footer)
        return 0
    print(format_table(*tables.compare_points(result)))
    print("\n".join(tables.run_lines(result.report, result.files)))
    if result.verdicts:
        print("\nverdict (validation accuracy, mean over seeds):")
        print("\n".join("  " + v.describe() for v in result.verdicts))
    return 0


def cmd_ladder(args: argparse.Namespace) -> int:
    """A family's params, MACs and resolution per phi, against budget^phi.

    The family (alpha, beta, gamma) makes from a base, including a scaled-down base, and how
    close its MACs come to (alpha*beta^2*gamma^2)^phi.
    """
    base = BaseOptions(**given(args, BaseOptions)).resolve()
    coeffs = Coefficients(args.alpha, args.beta, args.gamma)
    rungs = family_ladder(parse_phis(args.phi), coeffs, base, num_classes=args.num_classes)
    if args.json:
        print_json(
            {
                "base": base.to_dict(),
                "alpha": coeffs.alpha,
                "beta": coeffs.beta,
                "gamma": coeffs.gamma,
                "flops_factor": coeffs.flops_factor,
                "rungs": [{**dataclasses.asdict(r), "vs_target": r.vs_target} for r in rungs],
            }
        )
        return 0
    print(base.describe())
    print(
        f"d = {coeffs.alpha:g}^phi, w = {coeffs.beta:g}^phi, r = {coeffs.gamma:g}^phi; "
        f"target = (alpha*beta^2*gamma^2 = {coeffs.flops_factor:.3f})^phi"
    )
    print(format_table(*tables.ladder_table(rungs)))
    return 0
