"""``effnet lab search``, ``effnet lab compare`` and ``effnet lab ladder``: the scaling lab."""

from __future__ import annotations

import argparse

from effnet import lab
from effnet.cli.flags import add_command, add_flags, add_json, built, call, names
from effnet.cli.models import add_coefficients, coefficients
from effnet.cli.output import format_table, print_json
from effnet.lab import tables
from effnet.lab.tables import BaseOptions
from effnet.scaling import parse_phis


def add_commands(sub: argparse._SubParsersAction) -> None:
    parent = add_command(sub, cmd_lab)
    lab_sub = parent.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)
    p = add_command(lab_sub, cmd_search)
    _add_experiment(p)
    p.add_argument("--budget", type=float, default=2.0, help="compute growth per phi (2.0)")
    p.add_argument("--tolerance", type=float, default=0.05, help="on a*b^2*g^2 (0.05)")
    p.add_argument("--grid", default="", help="axes to change, e.g. 'alpha=1.1:1.3 beta=1.0,1.1'")
    p.add_argument("--macs-tolerance", type=float, default=0.25, help="train only phi = 1 models "
                   "within this of budget x the base's MACs (0.25)")  # fmt: skip
    p = add_command(lab_sub, cmd_compare)
    _add_experiment(p)
    p.add_argument("--targets", default="2,4", help="compute multiples of the base (2,4)")
    p.add_argument(
        "--strategies", type=names, default=",".join(lab.STRATEGIES), help="which curves"
    )
    p.add_argument("--tolerance", type=float, default=0.05, help="MACs match tolerance (0.05)")
    add_coefficients(p)
    p = add_command(lab_sub, cmd_ladder)
    add_flags(p.add_argument_group("base network"), BaseOptions)
    add_coefficients(p)
    p.add_argument("--phi", default="0..4", help="'0..4' or '0,1,2.5' (default 0..4)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier size (1000)")
    add_json(p, "a table")


def _add_experiment(p: argparse.ArgumentParser) -> None:
    add_flags(p.add_argument_group("data"), lab.DataConfig)
    add_flags(p.add_argument_group("base network"), BaseOptions)
    g = p.add_argument_group("training recipe (the same for every trial)")
    add_flags(g, lab.Recipe)
    g.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1 (mean and spread)")
    g = p.add_argument_group("execution")
    add_flags(g, lab.RunOptions)
    g.set_defaults(backend="process")  # a command runs on all the cores; the library, serially
    g.add_argument("--out", help="results directory (default runs/lab-<command>-<data>)")
    g.add_argument("--dry-run", action="store_true", help="show the models, train nothing")
    add_json(g, "tables")


def _common(args: argparse.Namespace) -> dict:
    return dict(data=built(lab.DataConfig, args), base=built(BaseOptions, args).resolve(),
                out_dir=args.out, recipe=built(lab.Recipe, args), run=built(lab.RunOptions, args),
                seeds=tables.numbers(args.seeds, "--seeds", int), dry_run=args.dry_run)  # fmt: skip


def cmd_lab(args: argparse.Namespace) -> int:
    """Scaling experiments: search alpha/beta/gamma, compound vs one-dimensional scaling.

    Run the paper's scaling experiments on your own data and hardware. Trials run serially, in a
    process pool or on Ray; results land in one directory and a re-run resumes, skipping
    finished trials.

    Examples:
      effnet lab ladder --base efficientnet_b0 --phi 0..4
      effnet lab search --data my_images --base efficientnet_b0 --budget 2.0 --dry-run
    """
    return 2  # a lab command is required: argparse says which


def cmd_search(args: argparse.Namespace) -> int:
    """Grid-search (alpha, beta, gamma) at phi = 1 under alpha*beta^2*gamma^2 ~= budget.

    Enumerate coefficient triples near the paper's under the budget, build each phi = 1 model
    from the base, measure its MACs, train the ones on budget under one short recipe and rank
    them by validation accuracy.

    Examples:
      effnet lab search --data my_images --base efficientnet_b0 --budget 2.0
      effnet lab search --data elpv --grid 'alpha=1.1:1.3 beta=1.0,1.1' --dry-run
    """
    result = call(lab.search, args, **_common(args), grid=lab.Grid.parse(args.grid))
    if args.json:
        return print_json(result.to_dict())
    print(result.base.describe())
    headline, plan, footer = tables.search_plan(result, args.tolerance, args.macs_tolerance)
    print("\n".join([headline, format_table(*plan), footer]))
    if args.dry_run:
        return 0
    print("\n" + format_table(*tables.search_ranking(result)))
    lines = tables.run_lines(result.report, result.files)
    print("\n".join(lines + tables.winner_lines(result, built(BaseOptions, args))))
    return 0 if result.winner else 1


def cmd_compare(args: argparse.Namespace) -> int:
    """Depth-, width-, resolution-only and compound models at matched MACs.

    At each compute target (a multiple of the base's measured MACs) build a depth-only,
    width-only, resolution-only and compound model within --tolerance of it, train them and the
    base under one recipe, and plot accuracy against MACs.

    Examples:
      effnet lab compare --data elpv --label-mode binary --base-width 0.4 --base-depth 0.25 \\
          --base-resolution 64 --resolution-multiple 4 --targets 2,4 --epochs 7 --seeds 0,1
      effnet lab compare --data my_images --strategies compound,resolution --dry-run
    """
    targets = tables.numbers(args.targets, "--targets")
    result = call(lab.compare, args, **_common(args), targets=targets, coeffs=coefficients(args))
    if args.json:
        return print_json(result.to_dict())
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

    Examples:
      effnet lab ladder --base efficientnet_b0 --base-width 0.5 --alpha 1.3 --beta 1.05
      effnet lab ladder --base efficientnet_lite0 --phi 0,1,2.5 --json
    """
    base = built(BaseOptions, args).resolve()
    c = coefficients(args)
    rungs = lab.family_ladder(parse_phis(args.phi), c, base, num_classes=args.num_classes)
    if args.json:
        return print_json(tables.ladder_dict(base, c, rungs))
    print(base.describe())
    print(tables.ladder_heading(c))
    print(format_table(*tables.ladder_table(rungs)))
    return 0
