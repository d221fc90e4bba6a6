"""Compound scaling against one-dimensional scaling at matched compute (paper Figures 3 and 8).

From one base, for every compute target (2 = twice the base's measured MACs): a depth-only, a
width-only, a resolution-only and a compound model, each found by bisection on measured MACs to
land within ``tolerance`` of the target (:func:`effnet.lab.families.match_macs`). All of them,
and the base, are trained under one recipe and the same seeds, and accuracy is plotted against
measured GMACs. Resolution-only and compound models see the data at their own resolution;
depth-only and width-only keep the base's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effnet.errors import ConfigError
from effnet.lab.experiment import (
    TIE,
    aggregate,
    prepare,
    run_summary,
    standard_error,
    write_summary,
)
from effnet.lab.families import STRATEGIES, Candidate, LabBase, base_candidate, match_macs
from effnet.lab.runner import RunReport
from effnet.lab.trial import DataConfig
from effnet.scaling import PAPER, Coefficients

__all__ = ["CompareResult", "Verdict", "compare", "plan_compare"]


@dataclass
class Verdict:
    """Did compound beat the best one-dimensional strategy at one target, and by how much?"""

    target: float
    compound: float
    best_other: str
    """The best one-dimensional strategy; several joined by '/' when they tie (``width/depth``)."""
    best_other_acc: float
    margin: float
    """compound - best one-dimensional, in accuracy (0.012 = 1.2 points)."""
    noise: float | None
    """Standard error of that difference: seed spread and validation-set size, the two models'
    errors taken as independent (conservative: both are scored on the same images)."""

    @property
    def outcome(self) -> str:
        # A tie, or a margin inside two standard errors, is not a win for anyone, whatever its sign.
        if abs(self.margin) < TIE or (
            self.noise is not None and abs(self.margin) <= 2 * self.noise
        ):
            return "within noise"
        return "compound won" if self.margin > 0 else f"{self.best_other} won"

    def describe(self) -> str:
        noise = f" (standard error {100 * self.noise:.1f})" if self.noise is not None else ""
        return (
            f"{self.target:g}x: compound {100 * self.compound:.1f}% vs best one-dimensional "
            f"({self.best_other}) {100 * self.best_other_acc:.1f}%: margin "
            f"{100 * self.margin:+.1f} points{noise}: {self.outcome}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, name) for name, key in _VERDICT_KEYS} | {"outcome": self.outcome}


_VERDICT_KEYS = (
    ("target", "target"),
    ("compound", "compound_acc"),
    ("best_other", "best_one_dimensional"),
    ("best_other_acc", "best_one_dimensional_acc"),
    ("margin", "margin"),
    ("noise", "margin_std_error"),
)
"""Verdict attribute -> its key in results.json."""


@dataclass
class CompareResult:
    out_dir: Path
    base: LabBase
    candidates: list[Candidate]
    points: list[dict[str, Any]]
    """One row per (strategy, target), seeds aggregated; the base has strategy 'base'."""
    verdicts: list[Verdict]
    report: RunReport | None
    """What ran (None for a dry run)."""
    seeds: tuple[int, ...] = (0,)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "base": self.base.to_dict(),
            "base_note": self.base.describe(),
            "candidates": [c.to_dict() for c in self.candidates],
            "points": self.points,
            "verdicts": [v.to_dict() for v in self.verdicts],
            **run_summary(self.report),
            "files": self.files,
        }


def plan_compare(
    base: LabBase,
    targets: Sequence[float] = (2.0, 4.0),
    *,
    strategies: Sequence[str] = STRATEGIES,
    coeffs: Coefficients = PAPER,
    tolerance: float = 0.05,
    num_classes: int = 1000,
) -> list[Candidate]:
    """The base and one model per (strategy, target), every one within ``tolerance`` of its
    target's MACs; raises listing every model that cannot get there, with the fixes."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ConfigError(f"strategies must be among {', '.join(STRATEGIES)}, got {unknown}")
    candidates = [base_candidate(base, num_classes)]
    for target in sorted(set(targets)):
        for strategy in strategies:
            candidates.append(
                match_macs(
                    base,
                    strategy,
                    target,
                    coeffs=coeffs,
                    tolerance=tolerance,
                    num_classes=num_classes,
                )
            )
    missed = [c for c in candidates if not c.matched]
    if missed:
        shown = "; ".join(
            f"{c.strategy} at {c.target:g}x reaches {c.ratio:.3f}x at best ({c.error:+.1%})"
            for c in missed
        )
        raise ConfigError(
            f"matched compute needs every model within {tolerance:.0%} of its target, but {shown}. "
            f"Rounding (whole blocks, channels in multiples of 8, the resolution grid) is coarse "
            f"on a small base: try another base size (e.g. --base-width 0.4 --base-depth 0.25 "
            f"--base-resolution 64), a finer --resolution-multiple (4), other --targets, or a "
            f"wider --tolerance. `effnet lab compare --dry-run` shows the models without training."
        )
    return candidates


def _verdicts(points: list[dict[str, Any]]) -> list[Verdict]:
    verdicts = []
    for target in sorted({p["target"] for p in points if p["strategy"] != "base"}):
        here = {p["strategy"]: p for p in points if p["target"] == target}
        others = [p for s, p in here.items() if s not in ("compound", "base")]
        if "compound" not in here or not others:
            continue
        top = max(p["val_acc_mean"] for p in others)
        # Every strategy at the top accuracy is named: picking one of a tie would be arbitrary.
        best = [p for p in others if top - p["val_acc_mean"] < TIE]
        comp = here["compound"]
        own, theirs = standard_error(comp), [standard_error(p) for p in best]
        noise = None
        known = [e for e in theirs if e is not None]
        if own is not None and len(known) == len(theirs):
            # the noisiest of the tied models: a conservative error for the difference
            noise = (own**2 + max(known) ** 2) ** 0.5
        verdicts.append(
            Verdict(
                target,
                comp["val_acc_mean"],
                "/".join(p["strategy"] for p in best),
                top,
                comp["val_acc_mean"] - top,
                noise,
            )
        )
    return verdicts


def compare(
    data: DataConfig,
    base: LabBase,
    out_dir: str | Path | None = None,
    *,
    targets: Sequence[float] = (2.0, 4.0),
    strategies: Sequence[str] = STRATEGIES,
    coeffs: Coefficients = PAPER,
    tolerance: float = 0.05,
    **experiment: Any,
) -> CompareResult:
    """Run the comparison; trials, ``results.csv``/``.json`` and ``compare.png`` land in
    ``out_dir`` (default ``runs/lab-compare-<data>``). Re-running the same call resumes:
    finished trials are not run again. ``experiment``: ``recipe``, ``seeds``, ``run``,
    ``trial_fn`` and ``dry_run`` (match the models, train and write nothing), as
    :func:`effnet.lab.experiment.prepare` takes them."""
    exp = prepare("compare", data, base, out_dir, **experiment)
    candidates = plan_compare(
        base,
        targets,
        strategies=strategies,
        coeffs=coeffs,
        tolerance=tolerance,
        num_classes=exp.splits.num_classes,
    )
    result = CompareResult(exp.out, base, candidates, [], [], None, exp.seeds)
    if exp.dry_run:
        return result
    trials = [
        exp.trial(f"{c.strategy}_x{c.target:g}_s{seed}", c, seed)
        for c in candidates
        for seed in exp.seeds
    ]
    coefficients = {"alpha": coeffs.alpha, "beta": coeffs.beta, "gamma": coeffs.gamma}
    manifest = {"targets": sorted(set(targets)), "tolerance": tolerance}
    result.report = exp.launch(candidates, trials, **manifest, coefficients=coefficients)
    rows = aggregate(result.report.results, lambda r: (r["strategy"], r["target"]))
    order = {s: i for i, s in enumerate(("base", *STRATEGIES))}
    result.points = sorted(rows.values(), key=lambda p: (p["target"], order[p["strategy"]]))
    for p in result.points:
        p["key"] = f"{p['strategy']}_x{p['target']:g}"
    result.verdicts = _verdicts(result.points)
    summary = {k: v for k, v in result.to_dict().items() if k != "files"}
    result.files = write_summary(exp.out, result.report.results, {"kind": "compare", **summary})
    if any(p["strategy"] != "base" for p in result.points):
        from effnet.lab.plots import plot_compare

        n = len(exp.seeds)
        spread = f"{n} seeds; error bars: min-max over seeds" if n > 1 else "1 seed, no error bars"
        title = f"matched-MACs scaling from {base.name} ({spread})"
        result.files["plot"] = str(plot_compare(result.points, exp.out / "compare.png", title))
    return result
