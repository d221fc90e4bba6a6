"""The hardware-aware variant chooser: the most accurate variant that meets a latency budget.

The seed's advice is to pick a variant by compute budget, but MACs predict latency badly across
families (depthwise convolutions are memory-bound, V2's fused convolutions are not) and across
machines. :func:`choose` therefore *measures* each candidate on this machine, in the runtime the
user will ship, and ranks by the published ImageNet top-1 of the candidate's default weights.
Measurements are cached per hardware + library versions (:class:`MeasurementCache`). A
variant's published top-1 is its default weights' in the weights catalog (:mod:`effnet.weights`),
the one list of them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from effnet.bench.cache import MeasurementCache, measurement_key
from effnet.bench.runners import make_runner
from effnet.bench.timing import time_fn
from effnet.cost import profile_spec
from effnet.errors import ConfigError
from effnet.host import torch_threads
from effnet.plotting import new_figure, save_figure
from effnet.registry import get_spec, list_models
from effnet.specs import ModelSpec, check_input_size

__all__ = ["Choice", "ChoiceRow", "choose", "pareto_front", "plot_choice", "published_top1"]


def published_top1(name: str) -> tuple[float | None, int | None, str]:
    """(top-1, eval resolution, source) of a name's weights in the weights catalog: its default
    weights' published top-1, else the best published one among its other tags (the source
    names the tag to load); None when none has a number (pass such a candidate with its own
    number: ``(name, top1)``)."""
    from effnet.weights import list_records

    published = [r for r in list_records(name) if r.top1 is not None]
    if not published:
        return None, None, ""
    record = next((r for r in published if r.default), max(published, key=lambda r: r.top1))
    return float(record.top1), record.preprocess.input_size, f"weights catalog ({record.tag})"


@dataclass
class ChoiceRow:
    """One candidate: what it promises (published top-1), costs, and measured here."""

    model: str
    top1: float
    """Published ImageNet top-1 (%) of its default weights, or the number the caller gave."""
    top1_source: str
    resolution: int
    gmacs: float
    """Multiply-adds per image at ``resolution``."""
    params: int
    latency_ms: float | None = None
    """Median time of one batch here (None: not measured); then its 90th percentile and the
    images per second the median gives."""
    p90_ms: float | None = None
    images_per_s: float | None = None
    within_budget: bool = False
    """Its median latency is within the budget."""
    pareto: bool = False
    cached: bool = False
    skipped: str = ""
    """Why it was not measured (a cheaper candidate already took over twice the budget)."""


@dataclass
class Choice:
    """The pick, and the whole measured table behind it."""

    best: ChoiceRow | None
    rows: list[ChoiceRow]
    latency_budget_ms: float
    batch: int
    runtime: str
    threads: int | None
    min_top1: float | None
    plot: str | None = None
    cache_file: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["best"] = asdict(self.best) if self.best else None
        return data

    def headline(self) -> str:
        top1 = f", top-1 >= {self.min_top1:g}" if self.min_top1 else ""
        return (
            f"budget {self.latency_budget_ms:g} ms per batch of {self.batch}, runtime "
            f"{self.runtime}{top1}"
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """Every candidate, fastest first: latency, whether it fits, the Pareto front."""
        headers = ["model", "top-1", "res", "GMACs", "median ms", "p90 ms", "in budget"]
        rows = [
            [
                *(r.model, r.top1, r.resolution, r.gmacs),
                "-" if r.latency_ms is None else r.latency_ms,
                "-" if r.p90_ms is None else r.p90_ms,
                "yes" if r.within_budget else "no",
                "*" if r.pareto else "",
                "cache" if r.cached else ("skipped" if r.skipped else "measured"),
            ]
            for r in sorted(self.rows, key=lambda r: (r.latency_ms is None, r.latency_ms or 0))
        ]
        return [*headers, "pareto", "source"], rows

    def summary(self) -> list[str]:
        """The pick, the plot and the cache file."""
        lines = []
        if self.best is not None:
            b = self.best
            lines.append(
                f"\nchoose: {b.model} -- top-1 {b.top1:.2f}% ({b.top1_source}), "
                f"{b.latency_ms or 0:.1f} ms at {b.resolution}px"
            )
        if self.plot:
            lines.append(f"plot: {self.plot}")
        if self.cache_file:
            lines.append(f"measurements cached in {self.cache_file}")
        return lines


def _measured(rows: Sequence[ChoiceRow]) -> list[tuple[float, ChoiceRow]]:
    return [(r.latency_ms, r) for r in rows if r.latency_ms is not None]


def pareto_front(rows: Sequence[ChoiceRow]) -> list[ChoiceRow]:
    """Measured rows no other row beats on both latency (lower) and top-1 (higher)."""
    measured = _measured(rows)
    front = [
        (ms, r)
        for ms, r in measured
        if not any(
            o is not r and o_ms <= ms and o.top1 >= r.top1 and (o_ms < ms or o.top1 > r.top1)
            for o_ms, o in measured
        )
    ]
    return [r for _, r in sorted(front, key=lambda pair: pair[0])]


def _candidates(
    candidates: Sequence[str | ModelSpec | tuple[str | ModelSpec, float]] | None,
) -> list[tuple[ModelSpec, float, int | None, str]]:
    items: list[tuple[ModelSpec, float, int | None, str]] = []
    names: Sequence[Any] = candidates if candidates is not None else list_models()
    for item in names:
        given_top1: float | None = None
        if isinstance(item, tuple):
            item, given_top1 = item
        spec = item if isinstance(item, ModelSpec) else get_spec(item)
        top1, size, source = published_top1(spec.name)
        if given_top1 is not None:
            top1, source = float(given_top1), "given"
        if top1 is None:
            if candidates is not None:
                raise ConfigError(
                    f"{spec.name} has no published top-1; pass it as ({spec.name!r}, top1)"
                )
            continue  # default candidate list: only variants with a published number
        items.append((spec, top1, size, source))
    if not items:
        raise ConfigError("no candidate variants with a known top-1 to choose from")
    return items


def _spec_hash(spec: ModelSpec) -> str:
    from effnet.specs import spec_to_dict

    return hashlib.sha256(json.dumps(spec_to_dict(spec), sort_keys=True).encode()).hexdigest()[:12]


def choose(
    latency_ms: float,
    *,
    batch: int = 1,
    runtime: str = "onnx",
    min_top1: float | None = None,
    candidates: Sequence[str | ModelSpec | tuple[str | ModelSpec, float]] | None = None,
    resolution: int | None = None,
    num_threads: int | None = None,
    cache: MeasurementCache | bool = True,
    plot: str | os.PathLike[str] | None = None,
    warmup: int = 3,
    repeats: int = 10,
    measure_all: bool = False,
    progress: bool = True,
) -> Choice:
    """Measure the candidates on this machine and return the most accurate one within budget.

    Args:
        latency_ms: the budget for one batch (median latency).
        batch, runtime: how the model will be served (see ``effnet bench`` runtimes).
        min_top1: ignore variants below this published top-1.
        candidates: variant names / specs, or (name, top1) pairs (default: every registered
            variant with a published top-1).
        resolution: measure every candidate at this size (default: each one's eval size).
        cache: a :class:`MeasurementCache`, True for the default one, False for none.
        plot: write a PNG of top-1 vs latency (with the Pareto front and the budget) here.
        measure_all: measure every candidate; by default a candidate is skipped when one with
            no more MACs already took more than twice the budget.
    """
    if not 0 < latency_ms < math.inf:  # NaN too: it would compare false with every latency
        raise ConfigError(f"the latency budget must be a positive number, got {latency_ms} ms")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a whole number >= 1, got {batch!r}")
    if resolution is not None:
        check_input_size(resolution)
    # (an empty MeasurementCache is falsy: test the type, not the truth value)
    store = MeasurementCache() if cache is True else (cache if cache is not False else None)
    rows: list[ChoiceRow] = []
    specs: dict[str, ModelSpec] = {}
    for spec, top1, size, source in _candidates(candidates):
        res = int(resolution or size or spec.default_preprocess.input_size)
        cost = profile_spec(spec, res)
        rows.append(ChoiceRow(spec.name, top1, source, res, round(cost.gmacs, 4), cost.params))
        specs[spec.name] = spec
    rows.sort(key=lambda r: r.gmacs)
    settings = {"runtime": runtime, "batch": batch, "threads": num_threads}
    timing = {"warmup": warmup, "repeats": repeats}
    with torch_threads(num_threads):
        _measure(rows, specs, latency_ms, settings, timing, store, measure_all, progress)
    for r in pareto_front(rows):
        r.pareto = True
    eligible = [r for r in rows if r.within_budget and (min_top1 is None or r.top1 >= min_top1)]
    best = max(eligible, key=lambda r: (r.top1, -(r.latency_ms or 0.0)), default=None)
    cache_file = str(store.path) if store is not None else None
    choice = Choice(best, rows, latency_ms, batch, runtime, num_threads, min_top1, None, cache_file)
    measured = _measured(rows)
    if best is None and measured:
        ms, fastest = min(measured, key=lambda pair: pair[0])
        choice.notes.append(
            f"no variant meets {latency_ms:g} ms"
            + (f" with top-1 >= {min_top1:g}" if min_top1 is not None else "")
            + f"; the fastest measured is {fastest.model} at {ms:.1f} ms: raise "
            f"the budget, lower --min-top1, try another --runtime, or a smaller --batch"
        )
    if plot is not None:
        try:
            choice.plot = str(plot_choice(choice, plot))
        except ImportError:  # the measurements are worth more than the picture
            choice.notes.append(
                "no plot: it needs matplotlib (pip install 'effnet[plot]'); the table above "
                "holds the same numbers"
            )
    return choice


def _measure(
    rows: list[ChoiceRow],
    specs: dict[str, ModelSpec],
    latency_ms: float,
    settings: dict[str, Any],
    timing: dict[str, int],
    store: MeasurementCache | None,
    measure_all: bool,
    progress: bool,
) -> None:
    """Time each row (cheapest first) or take it from the cache; skip, unless
    ``measure_all``, those with no fewer MACs than one already over twice the budget."""
    from tqdm.auto import tqdm

    from effnet.model import EfficientNet

    too_slow: ChoiceRow | None = None
    runtime, batch, threads = settings["runtime"], settings["batch"], settings["threads"]
    with tempfile.TemporaryDirectory(prefix="effnet-choose-") as work:
        for row in tqdm(rows, desc="choose", unit="model", disable=not progress):
            if not measure_all and too_slow is not None and row.gmacs >= too_slow.gmacs:
                row.skipped = (
                    f"not measured: needs >= the MACs of {too_slow.model}, which took "
                    f"{too_slow.latency_ms:.1f} ms (over 2x the budget)"
                )
                continue
            spec = specs[row.model]
            key = measurement_key(
                model=row.model, spec=_spec_hash(spec), resolution=row.resolution, **settings
            )
            entry = store.get(key) if store is not None else None
            row.cached = entry is not None
            if entry is None:
                net = EfficientNet(spec)
                runner = make_runner("effnet", runtime, net, batch, row.resolution, work, threads)
                entry = time_fn(runner.run, batch=batch, **timing).to_dict()
                if store is not None:
                    store.put(key, entry)
            row.latency_ms = float(entry["median_ms"])
            row.p90_ms = float(entry["p90_ms"])
            row.images_per_s = float(entry["images_per_s"])
            row.within_budget = row.latency_ms <= latency_ms
            if row.latency_ms > 2 * latency_ms and (too_slow is None or row.gmacs < too_slow.gmacs):
                too_slow = row


def plot_choice(choice: Choice, path: str | os.PathLike[str]) -> Path:
    """PNG: published top-1 vs measured latency, Pareto front, budget line, the pick circled."""
    from matplotlib.ticker import FuncFormatter

    fig = new_figure((7.5, 5), dpi=120)
    ax = fig.subplots()
    measured = _measured(choice.rows)
    ax.scatter(
        [ms for ms, _ in measured],
        [r.top1 for _, r in measured],
        c=["tab:green" if r.within_budget else "tab:gray" for _, r in measured],
        zorder=3,
    )
    for ms, r in measured:
        name = r.model.replace("efficientnet", "").strip("_") or r.model
        ax.annotate(name, (ms, r.top1), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = pareto_front(choice.rows)
    ax.plot(
        [r.latency_ms for r in front],
        [r.top1 for r in front],
        "-",
        color="tab:blue",
        label="Pareto front",
        zorder=2,
    )
    ax.axvline(choice.latency_budget_ms, color="tab:red", ls="--", label="budget")
    if choice.best is not None:
        ax.scatter(
            [choice.best.latency_ms],
            [choice.best.top1],
            s=220,
            facecolors="none",
            edgecolors="tab:red",
            linewidths=2,
            label=f"pick: {choice.best.model}",
            zorder=4,
        )
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 20, not 2x10^1
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel(f"median latency, ms (batch {choice.batch}, {choice.runtime}, log scale)")
    ax.set_ylabel("published ImageNet top-1 (%)")
    ax.set_title("EfficientNet variants measured on this machine")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
