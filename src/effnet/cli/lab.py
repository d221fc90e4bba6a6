"""``effnet lab search``, ``effnet lab compare`` and ``effnet lab ladder``: the scaling lab."""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

from effnet.cli.output import format_table, print_json
from effnet.lab import (
    BACKENDS,
    STRATEGIES,
    DataConfig,
    Grid,
    LabBase,
    Recipe,
    compare,
    family_ladder,
    plan_compare,
    plan_search,
    resolve_base,
    search,
)
from effnet.lab.experiment import macs_unit
from effnet.lab.search import triple_key, twins
from effnet.lab.trial import load_lab_data
from effnet.scaling import PAPER, Coefficients

_RECIPE_HELP = {
    "epochs": "epochs per trial",
    "batch_size": "training batch size",
    "eval_batch_size": "evaluation batch size",
    "optimizer": "adamw | sgd | rmsprop",
    "lr": "peak learning rate (linear warmup, then cosine decay)",
    "weight_decay": "weight decay on conv/linear weights",
    "warmup_epochs": "warmup length in epochs",
    "label_smoothing": "label smoothing of the cross-entropy",
    "augment": "flip (no crops) | none | light | medium | heavy",
    "vflip": "also flip vertically (top/bottom-symmetric data such as solar cells)",
    "dropout": "dropout before the classifier, the same for every model",
    "drop_path": "stochastic-depth rate, the same for every model",
    "bn_momentum": "BatchNorm momentum (0.1 suits short runs)",
    "crop_pct": "eval crop fraction (1.0 = resize to the input size, no crop)",
    "latency_runs": "timed batch-1 forward passes per trial (0 = skip)",
}


def add_commands(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser(
        "lab",
        help="scaling experiments: search alpha/beta/gamma, compound vs one-dimensional scaling",
        description="Run the paper's scaling experiments on your own data and hardware. Trials "
        "run serially, in a process pool or on Ray; results land in one directory and a re-run "
        "resumes, skipping finished trials.",
    )
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)

    p = lab_sub.add_parser(
        "search",
        help="grid-search (alpha, beta, gamma) at phi = 1 under alpha*beta^2*gamma^2 ~= budget",
        description="Enumerate coefficient triples near the paper's under the budget, build each "
        "phi = 1 model from the base, measure its MACs, train the ones on budget under one "
        "short recipe and rank them by validation accuracy.",
    )
    _add_common(p)
    p.add_argument("--budget", type=float, default=2.0, help="compute growth per phi (2.0)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="relative tolerance on alpha*beta^2*gamma^2 (0.05)",
    )
    p.add_argument(
        "--grid",
        default="",
        help="axes to change, e.g. 'alpha=1.1:1.3 beta=1.0,1.1 gamma=1.1:1.25:0.05' (default: "
        "paper +/- 0.1 in steps of 0.05)",
    )
    p.add_argument(
        "--macs-tolerance",
        type=float,
        default=0.25,
        help="train only phi = 1 models whose measured MACs are within this of budget x base "
        "(0.25; rounding puts B0's own phi = 1 at +16%%)",
    )
    p.set_defaults(func=cmd_search)

    p = lab_sub.add_parser(
        "compare",
        help="depth-, width-, resolution-only and compound models at matched MACs",
        description="At each compute target (a multiple of the base's measured MACs) build a "
        "depth-only, width-only, resolution-only and compound model within --tolerance of it, "
        "train them and the base under one recipe, and plot accuracy against MACs.",
    )
    _add_common(p)
    p.add_argument("--targets", default="2,4", help="compute multiples of the base (2,4)")
    p.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help=f"which curves ({','.join(STRATEGIES)})",
    )
    p.add_argument("--tolerance", type=float, default=0.05, help="MACs match tolerance (0.05)")
    _add_coefficients(p)
    p.set_defaults(func=cmd_compare)

    p = lab_sub.add_parser(
        "ladder",
        help="a custom family's ladder: params, MACs, resolution per phi vs budget^phi",
        description="The family (alpha, beta, gamma) makes from a base, including a scaled-down "
        "base: params, MACs and resolution per phi, and how close MACs come to "
        "(alpha*beta^2*gamma^2)^phi.",
    )
    _add_base(p)
    _add_coefficients(p)
    p.add_argument("--phi", default="0..4", help="'0..4' or '0,1,2.5' (default 0..4)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier size (1000)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_ladder)


def _add_base(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("base network")
    g.add_argument(
        "--base", default="efficientnet_b0", help="variant or base name (efficientnet_b0)"
    )
    g.add_argument("--base-width", type=float, default=1.0, help="scale the base's width first")
    g.add_argument("--base-depth", type=float, default=1.0, help="scale the base's depth first")
    g.add_argument(
        "--base-resolution", type=int, default=None, help="base input size in px (the base's)"
    )
    g.add_argument(
        "--resolution-multiple",
        type=int,
        default=8,
        help="round scaled resolutions to this multiple (8; 4 is finer for small bases)",
    )


def _add_coefficients(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=float, default=PAPER.alpha, help="depth coefficient (1.2)")
    p.add_argument("--beta", type=float, default=PAPER.beta, help="width coefficient (1.1)")
    p.add_argument("--gamma", type=float, default=PAPER.gamma, help="resolution coefficient (1.15)")


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", required=True, help="class folder, split folders, CSV, or 'elpv'")
    g.add_argument("--label-mode", choices=("4class", "binary"), help="elpv only (4class)")
    g.add_argument("--split", default="70/15/15", help="train/val/test fractions (70/15/15)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the split (0)")
    g.add_argument(
        "--subsample",
        type=float,
        default=1.0,
        help="keep this stratified fraction of every split, for speed (1.0)",
    )
    _add_base(p)
    g = p.add_argument_group("training recipe (the same for every trial)")
    hints = typing.get_type_hints(Recipe)
    for f in dataclasses.fields(Recipe):
        flag = "--" + f.name.replace("_", "-")
        text = f"{_RECIPE_HELP.get(f.name, '')} ({f.default})"
        if hints[f.name] is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            g.add_argument(flag, type=hints[f.name], default=None, dest=f.name, help=text)
    g.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1 (mean and spread)")
    g = p.add_argument_group("execution")
    g.add_argument("--backend", choices=BACKENDS, default="process", help="(process)")
    g.add_argument(
        "--workers", type=int, default=0, help="parallel trials (0: one per core; process)"
    )
    g.add_argument(
        "--threads", type=int, default=0, help="torch threads per trial (0: cores / workers)"
    )
    g.add_argument("--address", help="Ray cluster address (ray://HOST:10001 or auto)")
    g.add_argument("--out", help="results directory (default runs/lab-<command>-<data>)")
    g.add_argument(
        "--dry-run", action="store_true", help="show the models and trials, train nothing"
    )
    g.add_argument("--json", action="store_true", help="print JSON instead of tables")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def _floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"{flag} expects comma-separated numbers like 2,4, got {text!r}")
    return values


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds expects distinct whole numbers like 0,1, got {text!r}")
    return seeds


def _phis(text: str) -> list[float]:
    if ".." in text:
        lo, _, hi = text.partition("..")
        try:
            low, high = int(lo), int(hi)
        except ValueError:
            low, high = 1, 0
        if high < low:
            raise ValueError(f"--phi expects '0..4' or '0,1,2.5', got {text!r}")
        return [float(v) for v in range(low, high + 1)]
    return _floats(text, "--phi")


def _base(args: argparse.Namespace) -> LabBase:
    return resolve_base(
        args.base,
        width=args.base_width,
        depth=args.base_depth,
        resolution=args.base_resolution,
        resolution_multiple=args.resolution_multiple,
    )


def _data(args: argparse.Namespace) -> DataConfig:
    return DataConfig(
        source=args.data,
        label_mode=args.label_mode,
        split=args.split,
        split_seed=args.split_seed,
        subsample=args.subsample,
    )


def _recipe(args: argparse.Namespace) -> Recipe:
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Recipe)
        if getattr(args, f.name, None) is not None
    }
    return Recipe(**given)


def _out(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(args.data).name or args.data).strip("-") or "data"
    return Path("runs") / f"lab-{args.lab_command}-{slug}"


def _acc(row: dict[str, Any], metric: str = "val_acc") -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return "-"
    return f"{100 * mean:.1f}" + (f" +/- {100 * std:.1f}" if std is not None else "")


def _candidate_rows(candidates: list, with_coeffs: bool, scale: float) -> list[list[Any]]:
    same = twins(candidates) if with_coeffs else {}
    rows = []
    for c in candidates:
        d = c.to_dict()
        if with_coeffs:
            key = triple_key(d["alpha"], d["beta"], d["gamma"])
            trained = "no: off budget" if key not in same else "yes"
            if same.get(key, key) != key:
                trained = f"= {same[key]}"
        else:
            trained = "yes" if c.matched else "NO"
        head = (
            [d["alpha"], d["beta"], d["gamma"], c.coefficients.flops_factor]
            if with_coeffs and c.coefficients
            else [c.strategy, f"{c.target:g}x"]
        )
        rows.append(
            [
                *head,
                round(c.depth, 3),
                round(c.width, 3),
                c.resolution,
                c.params,
                c.macs / scale,
                c.ratio,
                f"{c.error:+.1%}",
                trained,
            ]
        )
    return rows


def cmd_search(args: argparse.Namespace) -> int:
    base, data, recipe = _base(args), _data(args), _recipe(args)
    grid = Grid.parse(args.grid) if args.grid.strip() else None
    seeds, out = _seeds(args.seeds), _out(args)
    if args.dry_run:
        num_classes = load_lab_data(data).num_classes
        candidates = plan_search(
            base,
            budget=args.budget,
            tolerance=args.tolerance,
            grid=grid,
            macs_tolerance=args.macs_tolerance,
            num_classes=num_classes,
        )
        if args.json:
            print_json({"base": base.to_dict(), "candidates": [c.to_dict() for c in candidates]})
            return 0
        print(base.describe())
        _print_search_plan(candidates, args, len(seeds))
        return 0
    result = search(
        data,
        base,
        out,
        budget=args.budget,
        tolerance=args.tolerance,
        grid=grid,
        macs_tolerance=args.macs_tolerance,
        recipe=recipe,
        seeds=seeds,
        backend=args.backend,
        workers=args.workers,
        threads=args.threads,
        address=args.address,
        progress=not args.no_progress,
    )
    if args.json:
        print_json(result.to_dict())
        return 0
    print(base.describe())
    _print_search_plan(result.candidates, args, len(seeds))
    print()
    scale, unit = macs_unit(r["macs"] for r in result.ranking)
    print(
        format_table(
            [
                "rank",
                "alpha",
                "beta",
                "gamma",
                "params",
                unit,
                "x base",
                "latency ms",
                "val acc %",
                "test acc %",
                "wall s",
                "same model as",
            ],
            [
                [
                    r["rank"],
                    r["alpha"],
                    r["beta"],
                    r["gamma"],
                    r["params"],
                    r["macs"] / scale,
                    r["macs_ratio"],
                    r["latency_ms"] if r["latency_ms"] is not None else "-",
                    _acc(r),
                    _acc(r, "test_acc"),
                    round(r["wall_s"]),
                    ", ".join(r["same_model"]) or "-",
                ]
                for r in result.ranking
            ],
        )
    )
    _print_run(result.report, result.files)
    win = result.winner
    if win:
        same = f"; the same model as {', '.join(win['same_model'])}" if win["same_model"] else ""
        print(
            f"\nwinner: alpha={win['alpha']:g}, beta={win['beta']:g}, gamma={win['gamma']:g} "
            f"(val acc {_acc(win)}%, {win['macs_ratio']:.2f}x the base's MACs{same})."
        )
        tied = result.tied_with_winner
        if tied:
            print(
                f"  TIED on validation accuracy with {', '.join(tied)}: named only because it "
                f"has the fewest MACs of them; the search did not separate these (train longer, "
                f"add seeds or use more validation images)."
            )
        print(
            f"its family: effnet lab ladder --alpha {win['alpha']:g} --beta {win['beta']:g} "
            f"--gamma {win['gamma']:g} {_base_flags(args)}"
        )
    return 0 if win else 1


def _print_search_plan(candidates: list, args: argparse.Namespace, n_seeds: int) -> None:
    print(
        f"{len(candidates)} triple(s) with alpha*beta^2*gamma^2 within {args.tolerance:.0%} of "
        f"{args.budget:g}; phi = 1 models measured against {args.budget:g}x the base's MACs "
        f"(+/- {args.macs_tolerance:.0%}):"
    )
    scale, unit = macs_unit(c.macs for c in candidates)
    print(
        format_table(
            [
                "alpha",
                "beta",
                "gamma",
                "a*b^2*g^2",
                "d",
                "w",
                "r",
                "params",
                unit,
                "x base",
                "vs budget",
                "trained",
            ],
            _candidate_rows(candidates, with_coeffs=True, scale=scale),
        )
    )
    same = twins(candidates)
    trained = sum(1 for k, rep in same.items() if k == rep)
    print(
        f"{trained} distinct model(s) (triples that round to the same network share one) x "
        f"{n_seeds} seed(s) = {trained * n_seeds} trial(s)"
    )


def _base_flags(args: argparse.Namespace) -> str:
    flags = [f"--base {args.base}"]
    if args.base_width != 1.0:
        flags.append(f"--base-width {args.base_width:g}")
    if args.base_depth != 1.0:
        flags.append(f"--base-depth {args.base_depth:g}")
    if args.base_resolution:
        flags.append(f"--base-resolution {args.base_resolution}")
    if args.resolution_multiple != 8:
        flags.append(f"--resolution-multiple {args.resolution_multiple}")
    return " ".join(flags)


def _print_run(report: Any, files: dict[str, str]) -> None:
    alone = report.backend == "serial" or (report.backend == "process" and report.workers == 1)
    print(
        f"\n{len(report.ran)} trial(s) run, {len(report.resumed)} found finished (resumed), "
        f"{len(report.failed)} failed; backend {report.backend}, {report.workers} worker(s) x "
        f"{report.threads} thread(s). Latency: batch 1, median of timed runs after training"
        + ("." if alone else ", measured while other trials ran.")
    )
    for failed in report.failed:
        print(f"  failed {failed['id']}: {failed['error']}")
    for kind, path in files.items():
        print(f"{kind}: {path}")


def cmd_compare(args: argparse.Namespace) -> int:
    base, data, recipe = _base(args), _data(args), _recipe(args)
    targets = _floats(args.targets, "--targets")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    coeffs = Coefficients(args.alpha, args.beta, args.gamma)
    seeds, out = _seeds(args.seeds), _out(args)
    if args.dry_run:
        num_classes = load_lab_data(data).num_classes
        candidates = plan_compare(
            base,
            targets,
            strategies=strategies,
            coeffs=coeffs,
            tolerance=args.tolerance,
            num_classes=num_classes,
        )
        if args.json:
            print_json({"base": base.to_dict(), "candidates": [c.to_dict() for c in candidates]})
            return 0
        print(base.describe())
        _print_compare_plan(candidates, len(seeds))
        return 0
    result = compare(
        data,
        base,
        out,
        targets=targets,
        strategies=strategies,
        coeffs=coeffs,
        tolerance=args.tolerance,
        recipe=recipe,
        seeds=seeds,
        backend=args.backend,
        workers=args.workers,
        threads=args.threads,
        address=args.address,
        progress=not args.no_progress,
    )
    if args.json:
        print_json(result.to_dict())
        return 0
    print(base.describe())
    scale, unit = macs_unit(p["macs"] for p in result.points)
    print(
        format_table(
            [
                "target",
                "strategy",
                "d",
                "w",
                "r",
                "params",
                unit,
                "x base",
                "latency ms",
                "val acc %",
                "test acc %",
            ],
            [
                [
                    f"{p['target']:g}x",
                    p["strategy"],
                    round(p["depth"], 3),
                    round(p["width"], 3),
                    p["resolution"],
                    p["params"],
                    p["macs"] / scale,
                    p["macs_ratio"],
                    p["latency_ms"] if p["latency_ms"] is not None else "-",
                    _acc(p),
                    _acc(p, "test_acc"),
                ]
                for p in result.points
            ],
        )
    )
    _print_run(result.report, result.files)
    if result.verdicts:
        print("\nverdict (validation accuracy, mean over seeds):")
        for v in result.verdicts:
            print("  " + v.describe())
    return 0


def _print_compare_plan(candidates: list, n_seeds: int) -> None:
    scale, unit = macs_unit(c.macs for c in candidates)
    print(
        format_table(
            [
                "strategy",
                "target",
                "d",
                "w",
                "r",
                "params",
                unit,
                "x base",
                "vs target",
                "matched",
            ],
            _candidate_rows(candidates, with_coeffs=False, scale=scale),
        )
    )
    print(f"{len(candidates)} model(s) x {n_seeds} seed(s) = {len(candidates) * n_seeds} trial(s)")


def cmd_ladder(args: argparse.Namespace) -> int:
    base = _base(args)
    coeffs = Coefficients(args.alpha, args.beta, args.gamma)
    rungs = family_ladder(_phis(args.phi), coeffs, base, num_classes=args.num_classes)
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
    scale, unit = macs_unit(r.macs for r in rungs)
    print(
        format_table(
            ["phi", "d", "w", "r", "params", unit, "x phi=0", "target", "MACs/target"],
            [
                [
                    f"{r.phi:g}",
                    r.depth,
                    r.width,
                    r.resolution,
                    r.params,
                    r.macs / scale,
                    r.ratio,
                    r.target,
                    r.vs_target,
                ]
                for r in rungs
            ],
        )
    )
    return 0
