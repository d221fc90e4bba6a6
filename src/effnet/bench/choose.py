"""The hardware-aware variant chooser: the most accurate variant that meets a latency budget.

The seed's advice is to pick a variant by compute budget, but MACs predict latency badly across
families (depthwise convolutions are memory-bound, V2's fused convolutions are not) and across
machines. :func:`choose` therefore *measures* each candidate on this machine, in the runtime the
user will ship, and ranks by the published ImageNet top-1 of the candidate's default weights.
Measurements are cached per hardware + library versions (:class:`MeasurementCache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from effnet.bench.cache import MeasurementCache, measurement_key
from effnet.bench.runners import make_runner
from effnet.bench.timing import threads, time_fn
from effnet.cost import profile_spec
from effnet.registry import get_spec, list_models
from effnet.specs import ModelSpec

__all__ = ["PUBLISHED_TOP1", "Choice", "ChoiceRow", "choose", "pareto_front", "published_top1"]

# ImageNet top-1 of each variant's default public weights (docs reference table): torchvision's
# checkpoints for B0-B7 and V2-S/M/L, timm's TF ports for Lite0-4. Used when the weights catalog
# (effnet.weights) does not give a number.
PUBLISHED_TOP1: dict[str, float] = {
    "efficientnet_b0": 77.692,
    "efficientnet_b1": 79.838,
    "efficientnet_b2": 80.608,
    "efficientnet_b3": 82.008,
    "efficientnet_b4": 83.384,
    "efficientnet_b5": 83.444,
    "efficientnet_b6": 84.008,
    "efficientnet_b7": 84.122,
    "efficientnet_lite0": 74.85,
    "efficientnet_lite1": 76.67,
    "efficientnet_lite2": 77.47,
    "efficientnet_lite3": 79.81,
    "efficientnet_lite4": 81.54,
    "efficientnetv2_s": 84.228,
    "efficientnetv2_m": 85.112,
    "efficientnetv2_l": 85.808,
}


def published_top1(name: str) -> tuple[float | None, int | None, str]:
    """(top-1, eval resolution, source) of a variant's default weights; None when unknown."""
    try:
        from effnet.weights import default_record

        record = default_record(name)
        if record.top1 is not None:
            size = getattr(getattr(record, "preprocess", None), "input_size", None)
            return float(record.top1), size, f"weights catalog ({record.tag})"
    except (ImportError, KeyError, LookupError, ValueError, AttributeError):
        pass
    if name in PUBLISHED_TOP1:
        return PUBLISHED_TOP1[name], None, "effnet.bench.choose.PUBLISHED_TOP1"
    return None, None, ""


@dataclass
class ChoiceRow:
    model: str
    top1: float
    top1_source: str
    resolution: int
    gmacs: float
    params: int
    latency_ms: float | None = None
    p90_ms: float | None = None
    images_per_s: float | None = None
    within_budget: bool = False
    pareto: bool = False
    cached: bool = False
    skipped: str = ""


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


def pareto_front(rows: Sequence[ChoiceRow]) -> list[ChoiceRow]:
    """Measured rows no other row beats on both latency (lower) and top-1 (higher)."""
    measured = [r for r in rows if r.latency_ms is not None]
    front = []
    for r in measured:
        dominated = any(
            o is not r
            and o.latency_ms <= r.latency_ms  # type: ignore[operator]
            and o.top1 >= r.top1
            and (o.latency_ms < r.latency_ms or o.top1 > r.top1)  # type: ignore[operator]
            for o in measured
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r.latency_ms)  # type: ignore[arg-type, return-value]


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
                raise ValueError(
                    f"{spec.name} has no published top-1; pass it as ({spec.name!r}, top1)"
                )
            continue  # default candidate list: only variants with a published number
        items.append((spec, top1, size, source))
    if not items:
        raise ValueError("no candidate variants with a known top-1 to choose from")
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
    from tqdm.auto import tqdm

    if latency_ms <= 0:
        raise ValueError(f"the latency budget must be positive, got {latency_ms} ms")
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
    too_slow: ChoiceRow | None = None
    with tempfile.TemporaryDirectory(prefix="effnet-choose-") as work, threads(num_threads):
        for row in tqdm(rows, desc="choose", unit="model", disable=not progress):
            if not measure_all and too_slow is not None and row.gmacs >= too_slow.gmacs:
                row.skipped = (
                    f"not measured: needs >= the MACs of {too_slow.model}, which took "
                    f"{too_slow.latency_ms:.1f} ms (over 2x the budget)"
                )
                continue
            spec = specs[row.model]
            key = measurement_key(
                model=row.model,
                spec=_spec_hash(spec),
                runtime=runtime,
                batch=batch,
                resolution=row.resolution,
                threads=num_threads,
            )
            entry = store.get(key) if store is not None else None
            if entry is None:
                from effnet.model import EfficientNet

                runner = make_runner(
                    "effnet", runtime, EfficientNet(spec), batch, row.resolution, work, num_threads
                )
                t = time_fn(runner.run, batch=batch, warmup=warmup, repeats=repeats)
                entry = t.to_dict()
                if store is not None:
                    store.put(key, entry)
            else:
                row.cached = True
            row.latency_ms = float(entry["median_ms"])
            row.p90_ms = float(entry["p90_ms"])
            row.images_per_s = float(entry["images_per_s"])
            row.within_budget = row.latency_ms <= latency_ms
            if row.latency_ms > 2 * latency_ms and (too_slow is None or row.gmacs < too_slow.gmacs):
                too_slow = row
    for r in pareto_front(rows):
        r.pareto = True
    eligible = [r for r in rows if r.within_budget and (min_top1 is None or r.top1 >= min_top1)]
    best = max(eligible, key=lambda r: (r.top1, -(r.latency_ms or 0.0)), default=None)
    choice = Choice(
        best=best,
        rows=rows,
        latency_budget_ms=latency_ms,
        batch=batch,
        runtime=runtime,
        threads=num_threads,
        min_top1=min_top1,
        cache_file=str(store.path) if store is not None else None,
    )
    if best is None:
        fastest = min((r for r in rows if r.latency_ms is not None), key=lambda r: r.latency_ms)  # type: ignore[arg-type, return-value]
        choice.notes.append(
            f"no variant meets {latency_ms:g} ms"
            + (f" with top-1 >= {min_top1:g}" if min_top1 is not None else "")
            + f"; the fastest measured is {fastest.model} at {fastest.latency_ms:.1f} ms: raise "
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


def plot_choice(choice: Choice, path: str | os.PathLike[str]) -> Path:
    """PNG: published top-1 vs measured latency, Pareto front, budget line, the pick circled."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    measured = [r for r in choice.rows if r.latency_ms is not None]
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    ax.scatter(
        [r.latency_ms for r in measured],
        [r.top1 for r in measured],
        c=["tab:green" if r.within_budget else "tab:gray" for r in measured],
        zorder=3,
    )
    for r in measured:
        ax.annotate(
            r.model.replace("efficientnet", "").strip("_") or r.model,
            (r.latency_ms, r.top1),  # type: ignore[arg-type]
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
