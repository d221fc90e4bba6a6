"""What search and compare share: preparing an experiment (its data, output folder and
manifest), trial configs from candidates, running them, and the summaries."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet._version import __version__
from effnet.data import SourceSplits, write_data_record
from effnet.files import atomic_write, write_json
from effnet.lab.families import Candidate, LabBase
from effnet.lab.runner import RunOptions, RunReport, TrialFn, run_trials
from effnet.lab.trial import DataConfig, Recipe, load_lab_data, run_trial
from effnet.specs import spec_to_dict

__all__ = [
    "SUMMARY_COLUMNS",
    "TIE",
    "Experiment",
    "aggregate",
    "default_out_dir",
    "macs_unit",
    "prepare",
    "run_summary",
    "standard_error",
    "trial_config",
    "write_summary",
]

TIE = 1e-9
"""Accuracies closer than this are equal: means of equal accuracies can differ in the last bit."""

MODEL_COLUMNS = (
    "alpha",
    "beta",
    "gamma",
    "phi",
    "depth",
    "width",
    "resolution",
    "params",
    "macs",
    "gmacs",
    "macs_ratio",
    "macs_error",
)
"""What a trial's model is: its coefficients, multipliers and measured cost (same for all seeds)."""

SUMMARY_COLUMNS = (
    "id",
    "strategy",
    "target",
    "seed",
    *MODEL_COLUMNS,
    "val_acc",
    "test_acc",
    "train_acc",
    "latency_ms",
    "train_s",
    "wall_s",
    "status",
)


def macs_unit(macs: Iterable[float | int | None]) -> tuple[float, str]:
    """``(divisor, unit)`` to show these MACs in: MMACs below 1 GMAC, else GMACs.

    One rule for every table and plot of the lab: a scaled-down base costs a few MMACs, which
    in GMACs would print as 0.001 and 0.002 for models that differ by 2x.
    """
    largest = max((m for m in macs if m is not None), default=0)
    return (1e6, "MMACs") if largest < 1e9 else (1e9, "GMACs")


def trial_config(
    kind: str,
    trial_id: str,
    candidate: Candidate,
    seed: int,
    data: DataConfig,
    recipe: Recipe,
) -> dict[str, Any]:
    """The JSON-able config :func:`effnet.lab.trial.run_trial` takes for one candidate."""
    how = candidate.to_dict()
    return {
        "id": trial_id,
        "kind": kind,
        "strategy": candidate.strategy,
        "target": candidate.target,
        "seed": seed,
        "alpha": how["alpha"],
        "beta": how["beta"],
        "gamma": how["gamma"],
        "phi": how["phi"],
        "depth": how["depth"],
        "width": how["width"],
        "macs_ratio": how["macs_ratio"],
        "macs_error": how["macs_error"],
        "spec": spec_to_dict(candidate.spec),
        "data": dataclasses.asdict(data),
        "recipe": dataclasses.asdict(recipe),
    }


def run_summary(report: RunReport | None) -> dict[str, list[str]]:
    """Which trials ran, were found finished (resumed) or failed; empty lists for a dry run."""
    if report is None:
        return {"ran": [], "resumed": [], "failed": []}
    return {
        "ran": report.ran,
        "resumed": report.resumed,
        "failed": [f["id"] for f in report.failed],
    }


def default_out_dir(kind: str, source: str) -> Path:
    """Where an experiment's results go when no folder is given: ``runs/lab-<kind>-<data>``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(source).name or source).strip("-") or "data"
    return Path("runs") / f"lab-{kind}-{slug}"


@dataclass
class Experiment:
    """An experiment about to run: its data (loaded once, so a bad source fails before any
    trial), base, recipe, seeds, results folder, and where and how its trials run."""

    kind: str
    data: DataConfig
    splits: SourceSplits
    base: LabBase
    recipe: Recipe
    seeds: tuple[int, ...]
    out: Path
    options: RunOptions
    trial_fn: TrialFn
    dry_run: bool

    def trial(self, trial_id: str, candidate: Candidate, seed: int) -> dict[str, Any]:
        """The config :func:`effnet.lab.trial.run_trial` takes for ``candidate``."""
        return trial_config(self.kind, trial_id, candidate, seed, self.data, self.recipe)

    def launch(
        self, candidates: Iterable[Candidate], trials: Sequence[dict[str, Any]], **manifest: Any
    ) -> RunReport:
        """Write ``lab.json`` (the resolved experiment) and ``data.json`` (its split, file for
        file), then run every trial not already finished in the results folder."""
        write_json(
            self.out / "lab.json",
            {
                "kind": self.kind,
                "effnet": __version__,
                "base": self.base.to_dict(),
                "base_note": self.base.describe(),
                "data": dataclasses.asdict(self.data),
                "recipe": dataclasses.asdict(self.recipe),
                "seeds": list(self.seeds),
                **manifest,
                "candidates": [c.to_dict() for c in candidates],
            },
        )
        write_data_record(self.out, self.splits)
        where = dataclasses.asdict(self.options)
        return run_trials(trials, self.out, **where, trial_fn=self.trial_fn)


def prepare(
    kind: str,
    data: DataConfig,
    base: LabBase,
    out_dir: str | Path | None = None,
    *,
    recipe: Recipe | None = None,
    seeds: Sequence[int] = (0,),
    run: RunOptions | None = None,
    trial_fn: TrialFn = run_trial,
    dry_run: bool = False,
) -> Experiment:
    """Load the data and settle everything an experiment needs; nothing is written yet.

    ``out_dir`` defaults to ``runs/lab-<kind>-<data>``; ``run`` says where trials run (default:
    serially, here); ``trial_fn`` trains one (tests pass stand-ins); ``dry_run``: plan only.
    """
    data = data.resolved()
    out = Path(out_dir) if out_dir is not None else default_out_dir(kind, data.source)
    splits = load_lab_data(data)
    return Experiment(
        kind,
        data,
        splits,
        base,
        recipe or Recipe(),
        tuple(seeds),
        out,
        run or RunOptions(),
        trial_fn,
        dry_run,
    )


def _mean_spread(values: Sequence[float], prefix: str) -> dict[str, float | None]:
    if not values:
        return {
            f"{prefix}_mean": None,
            f"{prefix}_std": None,
            f"{prefix}_min": None,
            f"{prefix}_max": None,
        }
    return {
        f"{prefix}_mean": statistics.fmean(values),
        f"{prefix}_std": statistics.stdev(values) if len(values) > 1 else None,
        f"{prefix}_min": min(values),
        f"{prefix}_max": max(values),
    }


def aggregate(
    results: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> dict[Any, dict[str, Any]]:
    """Mean / std / min / max of val and test accuracy and latency over seeds, per ``key``."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in results:
        if r.get("status") == "ok":
            groups.setdefault(key(r), []).append(r)
    out: dict[Any, dict[str, Any]] = {}
    for k, rows in groups.items():
        first = rows[0]
        row: dict[str, Any] = {
            "key": k,
            **{c: first.get(c) for c in ("strategy", "target", *MODEL_COLUMNS, "val_images")},
            "seeds": sorted(r["seed"] for r in rows),
            "val_accs": [r["val_acc"] for r in sorted(rows, key=lambda r: r["seed"])],
        }
        row.update(
            _mean_spread([r["val_acc"] for r in rows if r.get("val_acc") is not None], "val_acc")
        )
        row.update(
            _mean_spread([r["test_acc"] for r in rows if r.get("test_acc") is not None], "test_acc")
        )
        lat = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
        row["latency_ms"] = statistics.median(lat) if lat else None
        row["wall_s"] = sum(r.get("wall_s", 0.0) for r in rows)
        out[k] = row
    return out


def standard_error(row: dict[str, Any], metric: str = "val_acc") -> float | None:
    """Standard error of a mean accuracy: the spread across seeds (when there are several)
    combined with the binomial error of measuring an accuracy on ``val_images`` images.

    More seeds shrink the first term only; the second is the size of the validation set, which
    every seed shares. At 400 images and 80% it is 2 points, more than most seed spreads.
    """
    p, images = row.get(f"{metric}_mean"), row.get("val_images")
    if p is None:
        return None
    variance = 0.0
    n, std = len(row.get("seeds", [])), row.get(f"{metric}_std")
    if n > 1 and std is not None:
        variance += std**2 / n
    if images:
        variance += max(p * (1 - p), 0.0) / images
    return math.sqrt(variance) if variance > 0 else None


def write_summary(
    out_dir: Path, results: Sequence[dict[str, Any]], extra: dict[str, Any]
) -> dict[str, str]:
    """``results.csv`` (one row per trial) and ``results.json`` (trials + ``extra``)."""
    csv_path = out_dir / "results.csv"

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for r in results:
                writer.writerow({c: r.get(c) for c in SUMMARY_COLUMNS})

    atomic_write(csv_path, write_csv)
    json_path = out_dir / "results.json"
    trials = [{k: v for k, v in r.items() if k not in ("spec", "traceback")} for r in results]
    write_json(json_path, {**extra, "trials": trials})
    return {"csv": str(csv_path), "json": str(json_path)}
