"""The phi = 1 grid search for alpha, beta, gamma (paper section 3.3, step 1), on your data.

1. Enumerate (alpha, beta, gamma) on a grid with alpha * beta^2 * gamma^2 within ``tolerance``
   of ``budget`` (:mod:`effnet.lab.grid`).
2. Build each phi = 1 model from the base and *measure* its MACs: rounding (channels to
   multiples of 8, ceil on repeats, the resolution grid) can put it far from the budget on a
   small base. Triples outside ``macs_tolerance`` are reported but not trained, since a model
   with more compute than the others would win for the wrong reason.
3. Train every remaining model under the same recipe (and seeds), rank by validation accuracy
   (mean over seeds; fewer MACs breaks ties), and name the winner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effnet.errors import ConfigError
from effnet.lab.experiment import TIE, aggregate, prepare, run_summary, write_summary
from effnet.lab.families import Candidate, LabBase, architecture_key, phi1_candidates
from effnet.lab.grid import Grid, default_grid, enumerate_grid
from effnet.lab.runner import RunReport
from effnet.lab.trial import DataConfig

__all__ = ["SearchResult", "plan_search", "search", "triple_key", "twins"]


def triple_key(alpha: float, beta: float, gamma: float) -> str:
    return f"a{alpha:g}_b{beta:g}_g{gamma:g}"


def _key(candidate: Candidate) -> str:
    c = candidate.coefficients
    assert c is not None, "search candidates carry their coefficients"
    return triple_key(c.alpha, c.beta, c.gamma)


def twins(candidates: Sequence[Candidate]) -> dict[str, str]:
    """Triple key -> key of the first on-budget triple that builds the *same* model.

    Rounding on a small base maps neighbouring triples to one network (alpha 1.1 and 1.3 both
    add the same single block to a 7-block base); such a model is trained once and its result
    stands for every triple that builds it.
    """
    first: dict[object, str] = {}
    out: dict[str, str] = {}
    for c in candidates:
        if c.matched:
            out[_key(c)] = first.setdefault(architecture_key(c.spec), _key(c))
    return out


@dataclass
class SearchResult:
    out_dir: Path
    base: LabBase
    budget: float
    candidates: list[Candidate]
    """Every triple of the grid that meets the formula's budget, trained or not."""
    ranking: list[dict[str, Any]]
    """Trained models, best first (mean over seeds); ``same_model`` lists the other triples
    that round to the same network."""
    report: RunReport | None
    """What ran (None for a dry run)."""
    seeds: tuple[int, ...] = (0,)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def winner(self) -> dict[str, Any] | None:
        return self.ranking[0] if self.ranking else None

    @property
    def tied_with_winner(self) -> list[str]:
        """Keys of the other trained models with the winner's validation accuracy: the winner
        was named only by the tie-break (fewer MACs), not by accuracy."""
        if not self.ranking:
            return []
        top = self.ranking[0]["val_acc_mean"]
        if top is None:
            return []
        return [
            r["key"]
            for r in self.ranking[1:]
            if r["val_acc_mean"] is not None and abs(r["val_acc_mean"] - top) < TIE
        ]

    @property
    def over_budget(self) -> list[Candidate]:
        return [c for c in self.candidates if not c.matched]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "base": self.base.to_dict(),
            "base_note": self.base.describe(),
            "budget": self.budget,
            "winner": self.winner,
            "tied_with_winner": self.tied_with_winner,
            "ranking": self.ranking,
            "candidates": [c.to_dict() for c in self.candidates],
            "over_budget": [c.to_dict() for c in self.over_budget],
            "same_model": {k: v for k, v in twins(self.candidates).items() if k != v},
            **run_summary(self.report),
            "files": self.files,
        }


def plan_search(
    base: LabBase,
    *,
    budget: float = 2.0,
    tolerance: float = 0.05,
    grid: Grid | None = None,
    macs_tolerance: float = 0.25,
    num_classes: int = 1000,
) -> list[Candidate]:
    """The phi = 1 candidates of the grid, measured (``matched`` = within ``macs_tolerance``)."""
    coefficients = enumerate_grid(grid or default_grid(), budget, tolerance)
    return phi1_candidates(base, coefficients, budget, macs_tolerance, num_classes)


def search(
    data: DataConfig,
    base: LabBase,
    out_dir: str | Path | None = None,
    *,
    budget: float = 2.0,
    tolerance: float = 0.05,
    grid: Grid | None = None,
    macs_tolerance: float = 0.25,
    **experiment: Any,
) -> SearchResult:
    """Run the search; results, ``results.csv``/``.json`` and ``search.png`` land in
    ``out_dir`` (default ``runs/lab-search-<data>``). Re-running the same call resumes: finished
    trials are not run again. ``experiment``: ``recipe``, ``seeds``, ``run``, ``trial_fn`` and
    ``dry_run`` (measure the candidates, train and write nothing), as
    :func:`effnet.lab.experiment.prepare` takes them."""
    exp = prepare("search", data, base, out_dir, **experiment)
    candidates = plan_search(
        base,
        budget=budget,
        tolerance=tolerance,
        grid=grid,
        macs_tolerance=macs_tolerance,
        num_classes=exp.splits.num_classes,
    )
    result = SearchResult(exp.out, base, budget, candidates, [], None, exp.seeds)
    if exp.dry_run:
        return result
    if not any(c.matched for c in candidates):
        ratios = ", ".join(f"{c.ratio:.2f}" for c in candidates)
        raise ConfigError(
            f"every phi = 1 model of the grid lands outside {budget:g}x +/- "
            f"{macs_tolerance:.0%} of the base's measured MACs (ratios: {ratios}); rounding is "
            f"coarse on a small base: give the base more depth/width, or widen --macs-tolerance"
        )
    same = twins(candidates)
    trials = [
        exp.trial(f"{_key(c)}_s{seed}", c, seed)
        for c in candidates
        if same.get(_key(c)) == _key(c)  # a model several triples round to is trained once
        for seed in exp.seeds
    ]
    manifest = {"budget": budget, "tolerance": tolerance, "macs_tolerance": macs_tolerance}
    grid_text = (grid or default_grid()).describe()
    result.report = exp.launch(candidates, trials, **manifest, grid=grid_text)
    result.ranking = _rank(result.report.results, same)
    result.files = write_summary(
        exp.out, result.report.results, {"kind": "search", **_summary(result)}
    )
    if result.ranking:
        from effnet.lab.plots import plot_search

        n = len(exp.seeds)
        title = (
            f"phi = 1 search from {base.name}, budget {budget:g}x ({n} seed{'s' if n > 1 else ''})"
        )
        plot = plot_search(result.ranking, exp.out / "search.png", result.ranking[0]["key"], title)
        result.files["plot"] = str(plot)
    return result


def _rank(results: list[dict[str, Any]], same: dict[str, str]) -> list[dict[str, Any]]:
    """Trained models, best first: mean validation accuracy over seeds, fewer MACs on a tie."""
    rows = aggregate(results, lambda r: triple_key(r["alpha"], r["beta"], r["gamma"]))
    # rounded so that equal accuracies (up to the last bit of a mean) fall to the MACs tie-break
    ranking = sorted(
        rows.values(), key=lambda r: (-round(r["val_acc_mean"] or 0.0, 9), r["macs"] or 0)
    )
    for rank, row in enumerate(ranking, 1):
        row["rank"] = rank
        row["same_model"] = [k for k, rep in same.items() if rep == row["key"] and k != rep]
    return ranking


def _summary(result: SearchResult) -> dict[str, Any]:
    data = result.to_dict()
    data.pop("files")
    return data
