"""What ``effnet lab`` shows: the base to build from, and every table and summary line of a
plan, a search, a comparison and a ladder, as (headers, rows) and text the command prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from effnet.cost import LadderRow
from effnet.errors import ConfigError
from effnet.lab.compare import CompareResult
from effnet.lab.experiment import macs_unit
from effnet.lab.families import Candidate, LabBase, resolve_base
from effnet.lab.runner import RunReport
from effnet.lab.search import SearchResult, triple_key, twins
from effnet.scaling import Coefficients
from effnet.train.config import setting

__all__ = [
    "BaseOptions",
    "Table",
    "compare_plan",
    "compare_points",
    "ladder_dict",
    "ladder_heading",
    "ladder_table",
    "numbers",
    "run_lines",
    "search_plan",
    "search_ranking",
    "winner_lines",
]

Table = tuple[list[str], list[list[Any]]]
"""Column headers and rows, for :func:`effnet.cli.output.format_table`."""


@dataclass(frozen=True)
class BaseOptions:
    """The network an experiment scales from: a variant or base, optionally scaled down first
    (width and depth multipliers, a smaller input size) so that a whole experiment fits a small
    machine; :meth:`flags` rebuilds it on a command line."""

    base: str = setting("efficientnet_b0", "variant or base name")
    base_width: float = setting(1.0, "scale the base's width first")
    base_depth: float = setting(1.0, "scale the base's depth first")
    base_resolution: int | None = setting(None, "base input size in px (default: the base's)")
    resolution_multiple: int = setting(
        8, "round scaled resolutions to this multiple (4 is finer for small bases)"
    )

    def resolve(self) -> LabBase:
        return resolve_base(
            self.base,
            width=self.base_width,
            depth=self.base_depth,
            resolution=self.base_resolution,
            resolution_multiple=self.resolution_multiple,
        )

    def flags(self) -> str:
        """The command-line flags that rebuild this base (those that differ from the default)."""
        default = BaseOptions()
        parts = [f"--base {self.base}"]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "base" and value != getattr(default, f.name):
                parts.append(f"--{f.name.replace('_', '-')} {value:g}")
        return " ".join(parts)


def accuracy(row: dict[str, Any], metric: str = "val_acc") -> str:
    """``81.2 +/- 0.4``: a mean accuracy in percent with its spread over seeds."""
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return "-"
    return f"{100 * mean:.1f}" + (f" +/- {100 * std:.1f}" if std is not None else "")


def _model_cells(c: Candidate, scale: float) -> list[Any]:
    return [
        round(c.depth, 3),
        round(c.width, 3),
        c.resolution,
        c.params,
        c.macs / scale,
        c.ratio,
        f"{c.error:+.1%}",
    ]


def search_plan(
    result: SearchResult, tolerance: float, macs_tolerance: float
) -> tuple[str, Table, str]:
    """(headline, table of every triple with whether it is trained, trial count line)."""
    candidates, budget = result.candidates, result.budget
    same = twins(candidates)
    scale, unit = macs_unit(c.macs for c in candidates)
    rows = []
    for c in candidates:
        d = c.to_dict()
        key = triple_key(d["alpha"], d["beta"], d["gamma"])
        trained = "no: off budget" if key not in same else "yes"
        if same.get(key, key) != key:
            trained = f"= {same[key]}"
        assert c.coefficients is not None
        head = [d["alpha"], d["beta"], d["gamma"], c.coefficients.flops_factor]
        rows.append([*head, *_model_cells(c, scale), trained])
    headers = ["alpha", "beta", "gamma", "a*b^2*g^2", "d", "w", "r", "params", unit, "x base"]
    headline = (
        f"{len(candidates)} triple(s) with alpha*beta^2*gamma^2 within {tolerance:.0%} of "
        f"{budget:g}; phi = 1 models measured against {budget:g}x the base's MACs "
        f"(+/- {macs_tolerance:.0%}):"
    )
    distinct = sum(1 for k, rep in same.items() if k == rep)
    n = len(result.seeds)
    footer = (
        f"{distinct} distinct model(s) (triples that round to the same network share one) x "
        f"{n} seed(s) = {distinct * n} trial(s)"
    )
    return headline, ([*headers, "vs budget", "trained"], rows), footer


def search_ranking(result: SearchResult) -> Table:
    scale, unit = macs_unit(r["macs"] for r in result.ranking)
    headers = ["rank", "alpha", "beta", "gamma", "params", unit, "x base", "latency ms"]
    rows = [
        [
            r["rank"],
            r["alpha"],
            r["beta"],
            r["gamma"],
            r["params"],
            r["macs"] / scale,
            r["macs_ratio"],
            r["latency_ms"] if r["latency_ms"] is not None else "-",
            accuracy(r),
            accuracy(r, "test_acc"),
            round(r["wall_s"]),
            ", ".join(r["same_model"]) or "-",
        ]
        for r in result.ranking
    ]
    return [*headers, "val acc %", "test acc %", "wall s", "same model as"], rows


def winner_lines(result: SearchResult, base: BaseOptions) -> list[str]:
    """The winner, a warning when it won only by the MACs tie-break, and its family command."""
    win = result.winner
    if win is None:
        return []
    same = f"; the same model as {', '.join(win['same_model'])}" if win["same_model"] else ""
    lines = [
        f"\nwinner: alpha={win['alpha']:g}, beta={win['beta']:g}, gamma={win['gamma']:g} "
        f"(val acc {accuracy(win)}%, {win['macs_ratio']:.2f}x the base's MACs{same})."
    ]
    tied = result.tied_with_winner
    if tied:
        lines.append(
            f"  TIED on validation accuracy with {', '.join(tied)}: named only because it has "
            f"the fewest MACs of them; the search did not separate these (train longer, add "
            f"seeds or use more validation images)."
        )
    lines.append(
        f"its family: effnet lab ladder --alpha {win['alpha']:g} --beta {win['beta']:g} "
        f"--gamma {win['gamma']:g} {base.flags()}"
    )
    return lines


def compare_plan(result: CompareResult) -> tuple[Table, str]:
    candidates = result.candidates
    scale, unit = macs_unit(c.macs for c in candidates)
    rows = [
        [c.strategy, f"{c.target:g}x", *_model_cells(c, scale), "yes" if c.matched else "NO"]
        for c in candidates
    ]
    headers = ["strategy", "target", "d", "w", "r", "params", unit, "x base", "vs target"]
    n, total = len(result.seeds), len(candidates)
    footer = f"{total} model(s) x {n} seed(s) = {total * n} trial(s)"
    return ([*headers, "matched"], rows), footer


def compare_points(result: CompareResult) -> Table:
    scale, unit = macs_unit(p["macs"] for p in result.points)
    headers = ["target", "strategy", "d", "w", "r", "params", unit, "x base", "latency ms"]
    rows = [
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
            accuracy(p),
            accuracy(p, "test_acc"),
        ]
        for p in result.points
    ]
    return [*headers, "val acc %", "test acc %"], rows


def ladder_heading(coeffs: Coefficients) -> str:
    """The formula a ladder follows and the budget it is held against."""
    c = coeffs
    return (
        f"d = {c.alpha:g}^phi, w = {c.beta:g}^phi, r = {c.gamma:g}^phi; target = "
        f"(alpha*beta^2*gamma^2 = {c.flops_factor:.3f})^phi"
    )


def ladder_dict(base: LabBase, coeffs: Coefficients, rungs: Sequence[LadderRow]) -> dict[str, Any]:
    """``effnet lab ladder --json``: the base, the coefficients and every rung."""
    c = coeffs
    rows = [{**dataclasses.asdict(r), "vs_target": r.vs_target} for r in rungs]
    return dict(base=base.to_dict(), alpha=c.alpha, beta=c.beta, gamma=c.gamma,
                flops_factor=c.flops_factor, rungs=rows)  # fmt: skip


def numbers(text: str, flag: str, kind: type = float) -> list:
    """A flag's comma-separated numbers (``kind`` int: distinct whole numbers, e.g. seeds)."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or (kind is int and len(set(values)) != len(values)):
        what = "distinct whole numbers like 0,1" if kind is int else "comma-separated numbers"
        raise ConfigError(f"{flag} expects {what}, got {text!r}")
    return values


def ladder_table(rungs: Sequence[Any]) -> Table:
    scale, unit = macs_unit(r.macs for r in rungs)
    headers = ["phi", "d", "w", "r", "params", unit, "x phi=0", "target", "MACs/target"]
    rows = [
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
    ]
    return headers, rows


def run_lines(report: RunReport | None, files: dict[str, str]) -> list[str]:
    """What ran where, what failed, and the files written."""
    if report is None:
        return []
    alone = report.backend == "serial" or (report.backend == "process" and report.workers == 1)
    lines = [
        f"\n{len(report.ran)} trial(s) run, {len(report.resumed)} found finished (resumed), "
        f"{len(report.failed)} failed; backend {report.backend}, {report.workers} worker(s) x "
        f"{report.threads} thread(s). Latency: batch 1, median of timed runs after training"
        + ("." if alone else ", measured while other trials ran.")
    ]
    lines += [f"  failed {failed['id']}: {failed['error']}" for failed in report.failed]
    lines += [f"{kind}: {path}" for kind, path in files.items()]
    return lines
