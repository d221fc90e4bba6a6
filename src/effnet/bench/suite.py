"""``bench()``: latency, throughput, memory and achieved FLOP rate of models x runtimes x batches.

For every (model, batch, resolution) group, all runners (effnet's runtimes, and with
``peers=True`` timm's and torchvision's same variant) are prepared first and then timed
round-robin in the same loop, so their ratios come from the same minutes of the same machine.
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from effnet.bench.hardware import fingerprint
from effnet.bench.runners import (
    EFFNET_RUNTIMES,
    PEER_NAMES,
    PEER_RUNTIMES,
    Runner,
    build_effnet,
    make_runner,
    peer_model,
)
from effnet.bench.timing import Timing, measure_interleaved, peak_rss_delta
from effnet.cost import Cost, count_params, profile, profile_spec
from effnet.errors import ConfigError, did_you_mean
from effnet.host import torch_threads
from effnet.specs import ModelSpec

__all__ = ["BenchReport", "BenchRow", "bench"]

_DIGITS = {
    "median_ms": 3,
    "p90_ms": 3,
    "min_ms": 3,
    "images_per_s": 2,
    "gflops_per_s": 2,
    "gmacs": 4,
    "peak_memory_mb": 1,
    "setup_s": 2,
}
"""How the JSON report rounds each measured number (the rows keep them exact)."""


@dataclass
class BenchRow:
    """One (model, library, runtime, batch, resolution) measurement, numbers unrounded (the
    derived ones are computed from the exact measurements, so they agree to the last bit)."""

    model: str
    library: str
    runtime: str
    batch: int
    resolution: int
    threads: int | None
    median_ms: float
    p90_ms: float
    min_ms: float
    images_per_s: float
    peak_memory_mb: float | None
    """Peak resident memory of the runner (weights, runtime arenas, activations of a call):
    measured alone in a fresh process by default, see ``bench(memory=...)``; Linux only."""
    params: int
    gmacs: float
    """Multiply-adds per image (effnet's count; peers have the same architecture)."""
    gflops_per_s: float
    """Achieved rate: 2 x MACs x batch / median latency."""
    repeats: int
    setup_s: float
    ratios: dict[str, float] = field(default_factory=dict)
    """Throughput of this row / that of ``library/runtime`` in the same group."""
    note: str = ""
    error: str = ""


@dataclass
class BenchReport:
    rows: list[BenchRow]
    environment: dict[str, Any]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        rows = [
            {k: round(v, _DIGITS[k]) if k in _DIGITS and v is not None else v for k, v in r.items()}
            for r in map(asdict, self.rows)
        ]
        return {"environment": self.environment, "settings": self.settings, "rows": rows}

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """Headers and one row per measurement, with the ratios against the peers."""
        headers = ["model", "lib", "runtime", "batch", "res", "median ms", "p90 ms", "img/s"]
        rows = []
        for r in self.rows:
            vs = [r.ratios.get(f"{lib}/{r.runtime}") for lib in ("torchvision", "timm")]
            rows.append(
                [
                    *(r.model, r.library, r.runtime, r.batch, r.resolution),
                    *(r.median_ms, r.p90_ms, r.images_per_s, r.gflops_per_s),
                    "-" if r.peak_memory_mb is None else r.peak_memory_mb,
                    *("-" if v is None else f"{v:.2f}x" for v in vs),
                    r.error[:60] or r.note,
                ]
            )
        return [*headers, "GFLOP/s", "peak MB", "vs tv", "vs timm", "note"], rows

    def costs(self) -> list[str]:
        """Parameters and multiply-adds of each (model, resolution) measured."""
        seen = {(r.model, r.resolution): r for r in self.rows}
        return [
            f"{m}: {r.params:,} params, {r.gmacs:.3f} GMACs/image at {res}px"
            for (m, res), r in seen.items()
        ]


def _model_name(model: str | ModelSpec | nn.Module) -> str:
    if isinstance(model, str):
        return model
    if isinstance(model, ModelSpec):
        return model.name
    return getattr(getattr(model, "spec", None), "name", type(model).__name__)


def _add_ratios(rows: list[BenchRow]) -> None:
    by_key = {(r.library, r.runtime): r for r in rows if not r.error}
    for row in rows:
        if row.error or row.library != "effnet":
            continue
        for (lib, rt), other in by_key.items():
            if (lib, rt) != (row.library, row.runtime):
                row.ratios[f"{lib}/{rt}"] = round(row.images_per_s / other.images_per_s, 3)


def bench(
    models: Sequence[str | ModelSpec | nn.Module],
    *,
    batches: Sequence[int] = (1,),
    resolutions: Sequence[int] | None = None,
    runtimes: Sequence[str] = ("eager",),
    peers: bool = False,
    peer_runtimes: Sequence[str] | None = None,
    num_threads: int | None = 2,
    warmup: int = 3,
    repeats: int = 10,
    memory: bool | str = "subprocess",
    workdir: str | None = None,
    progress: bool = True,
    model_kwargs: dict[str, Any] | None = None,
) -> BenchReport:
    """Measure every model in every runtime at every batch size (and resolution).

    Args:
        models: variant names, specs or built effnet models.
        batches / resolutions: the grid (default resolution: each model's own).
        runtimes: effnet runtimes, see :data:`effnet.bench.runners.EFFNET_RUNTIMES`.
        peers: also measure timm's and torchvision's same variant (eager and ONNX, or
            ``peer_runtimes``) in the same loop; rows then carry ``ratios`` against them.
        num_threads: torch and ONNX Runtime intra-op threads (None: library defaults).
        warmup, repeats: untimed and timed calls per runner.
        memory: ``"subprocess"`` (default): each runner's peak resident memory measured alone
            in a fresh process (see :mod:`effnet.bench.memprobe`; registered names only);
            ``"inline"``/True: growth during the first call in this process (cheap, but the
            allocator's reuse of freed memory can hide part of it); False or ``"off"``: none.
    """
    from tqdm.auto import tqdm

    _check_runtimes(runtimes)
    tmp = tempfile.TemporaryDirectory(prefix="effnet-bench-") if workdir is None else None
    work = Path(workdir) if tmp is None else Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    rows: list[BenchRow] = []
    groups = [(m, b, r) for m in models for r in (resolutions or [None]) for b in batches]
    bar = tqdm(total=len(groups) * repeats, unit="round", desc="bench", disable=not progress)
    peer_rts = [r for r in (peer_runtimes or runtimes) if r in PEER_RUNTIMES] or ["eager"]
    settings = _Settings(runtimes, peer_rts, peers, num_threads, warmup, repeats, memory, work,
                         dict(model_kwargs or {}), bar.update)  # fmt: skip
    try:
        with torch_threads(num_threads):
            for model, batch, res in groups:
                rows.extend(_bench_group(model, batch, res, settings))
                gc.collect()
    finally:
        bar.close()
        if tmp is not None:
            tmp.cleanup()
    return BenchReport(rows, fingerprint(), settings.to_dict(batches, resolutions))


def _check_runtimes(runtimes: Sequence[str]) -> None:
    unknown = [r for r in runtimes if r not in EFFNET_RUNTIMES]
    if unknown:
        near = "".join(did_you_mean(r, EFFNET_RUNTIMES) for r in unknown)
        raise ConfigError(
            f"unknown runtime(s) {unknown}; choose from {', '.join(EFFNET_RUNTIMES)}.{near}"
        )


@dataclass(frozen=True)
class _Settings:
    """What every group of one :func:`bench` call is measured with."""

    runtimes: Sequence[str]
    peer_runtimes: Sequence[str]
    peers: bool
    num_threads: int | None
    warmup: int
    repeats: int
    memory: bool | str
    work: Path
    """Where runners write their files (ONNX models, compiled caches)."""
    model_kwargs: dict[str, Any]
    advance: Callable[[int], Any]
    """Called after each timed round (the progress bar)."""

    def to_dict(self, batches: Sequence[int], resolutions: Sequence[int] | None) -> dict[str, Any]:
        """The report's ``settings``."""
        return {
            "batches": list(batches),
            "resolutions": list(resolutions) if resolutions else None,
            "runtimes": list(self.runtimes),
            "peers": self.peers,
            "threads": self.num_threads,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "timing": "round-robin over runners of a group; median and p90 of per-call latency",
        }


def _bench_group(
    model: str | ModelSpec | nn.Module, batch: int, res: int | None, settings: _Settings
) -> list[BenchRow]:
    name = _model_name(model)
    base = build_effnet(model, **settings.model_kwargs)
    resolution = int(res or base.preprocess.input_size)
    if isinstance(model, nn.Module):
        cost = profile(model, resolution)
    else:  # on the meta device: no compute, even for the big variants
        cost = profile_spec(base.spec, resolution, num_classes=base.num_classes)
    plan: list[tuple[str, str]] = [("effnet", rt) for rt in settings.runtimes]
    if settings.peers and name in PEER_NAMES:
        timm_name, tv_name = PEER_NAMES[name]
        for lib, peer_name in (("torchvision", tv_name), ("timm", timm_name)):
            if peer_name:
                plan.extend((lib, rt) for rt in settings.peer_runtimes)
    runners, peaks, errors = _prepare(model, name, plan, batch, resolution, settings)
    timings = measure_interleaved(
        {f"{lib}/{rt}": r.run for (lib, rt), r in runners.items()},
        batch=batch,
        warmup=settings.warmup,
        repeats=settings.repeats,
        progress=settings.advance,
    )
    if settings.memory == "subprocess" and isinstance(model, str):
        from effnet.bench.memprobe import measure_in_subprocess

        for lib, rt in runners:
            if rt != "compiled":  # compiling dominates its memory; not an inference number
                mb = measure_in_subprocess(
                    lib, rt, name, batch, resolution, settings.num_threads, settings.work
                )
                peaks[(lib, rt)] = None if mb is None else mb * 2**20
    common = {
        "model": name, "batch": batch, "resolution": resolution, "threads": settings.num_threads
    }  # fmt: skip
    rows = [
        _row(
            common,
            lib,
            rt,
            cost,
            count_params(base),
            runners.get((lib, rt)),
            timings.get(f"{lib}/{rt}"),
            peaks.get((lib, rt)),
            errors.get((lib, rt), ""),
        )
        for lib, rt in plan
    ]
    _add_ratios(rows)
    return rows


def _prepare(
    model: str | ModelSpec | nn.Module,
    name: str,
    plan: list[tuple[str, str]],
    batch: int,
    resolution: int,
    settings: _Settings,
) -> tuple[dict[tuple[str, str], Runner], dict[tuple[str, str], float | None], dict[Any, str]]:
    """A runner for each (library, runtime) of ``plan``, its inline peak memory (with
    ``memory="inline"``), and the error of each that could not be prepared."""
    runners: dict[tuple[str, str], Runner] = {}
    errors: dict[tuple[str, str], str] = {}
    peaks: dict[tuple[str, str], float | None] = {}
    for lib, rt in plan:
        try:
            net = (
                build_effnet(model, **settings.model_kwargs)
                if lib == "effnet"
                else peer_model(lib, name)
            )
            runner = make_runner(
                lib, rt, net, batch, resolution, settings.work, settings.num_threads
            )
            # inline: memory of the first call, where runtimes size their arenas and prepack
            # weights (a steady-state call allocates little that is new)
            inline = settings.memory is True or settings.memory == "inline"
            peaks[(lib, rt)] = peak_rss_delta(runner.run) if inline else None
            runners[(lib, rt)] = runner
        except Exception as exc:  # a missing optional runtime must not sink the whole run
            errors[(lib, rt)] = f"{type(exc).__name__}: {exc}"
    return runners, peaks, errors


def _row(
    common: dict[str, Any],
    lib: str,
    rt: str,
    cost: Cost,
    params: int,
    runner: Runner | None,
    t: Timing | None,
    peak: float | None,
    error: str,
) -> BenchRow:
    """A measured row, or one that carries the error that kept the runner from running."""
    row = BenchRow(
        **common,
        library=lib,
        runtime=rt,
        params=params,
        gmacs=cost.gmacs,
        median_ms=float("nan"),
        p90_ms=float("nan"),
        min_ms=float("nan"),
        images_per_s=float("nan"),
        peak_memory_mb=None,
        gflops_per_s=float("nan"),
        repeats=0,
        setup_s=0.0,
        error=error,
    )
    if runner is None or t is None:
        return row
    row.median_ms, row.p90_ms, row.min_ms = t.median_ms, t.p90_ms, t.min_ms
    row.images_per_s = t.images_per_s
    row.peak_memory_mb = None if peak is None else peak / 2**20
    row.gflops_per_s = 2 * cost.macs * common["batch"] / (t.median_ms / 1000) / 1e9
    row.repeats, row.setup_s, row.note = len(t.samples_ms), runner.setup_seconds, runner.note
    return row
