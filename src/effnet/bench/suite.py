"""``bench()``: latency, throughput, memory and achieved FLOP rate of models x runtimes x batches.

For every (model, batch, resolution) group, all runners (effnet's runtimes, and with
``peers=True`` timm's and torchvision's same variant) are prepared first and then timed
round-robin in the same loop, so their ratios come from the same minutes of the same machine.
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from effnet.bench.hardware import fingerprint
from effnet.bench.runners import EFFNET_RUNTIMES, PEER_NAMES, PEER_RUNTIMES, make_runner, peer_model
from effnet.bench.timing import measure_interleaved, peak_rss_delta, threads
from effnet.cost import count_params, profile, profile_spec
from effnet.registry import get_spec
from effnet.specs import ModelSpec

__all__ = ["BenchReport", "BenchRow", "bench", "build_effnet"]


@dataclass
class BenchRow:
    """One (model, library, runtime, batch, resolution) measurement."""

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
        return {
            "environment": self.environment,
            "settings": self.settings,
            "rows": [asdict(r) for r in self.rows],
        }


def build_effnet(model: str | ModelSpec | nn.Module, **kwargs: Any) -> nn.Module:
    """An effnet model from a name, a spec, or as given."""
    if isinstance(model, nn.Module):
        return model
    from effnet.model import EfficientNet

    return EfficientNet(get_spec(model), **kwargs)


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
            allocator's reuse of freed memory can hide part of it); False: none.
    """
    from tqdm.auto import tqdm

    unknown = [r for r in runtimes if r not in EFFNET_RUNTIMES]
    if unknown:
        raise ValueError(f"unknown runtime(s) {unknown}; choose from {', '.join(EFFNET_RUNTIMES)}")
    kwargs = dict(model_kwargs or {})
    peer_rts = [r for r in (peer_runtimes or runtimes) if r in PEER_RUNTIMES] or ["eager"]
    tmp = tempfile.TemporaryDirectory(prefix="effnet-bench-") if workdir is None else None
    work = Path(workdir or tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    rows: list[BenchRow] = []
    groups = [(m, b, r) for m in models for r in (resolutions or [None]) for b in batches]
    bar = tqdm(total=len(groups) * repeats, unit="round", desc="bench", disable=not progress)
    try:
        with threads(num_threads):
            for model, batch, res in groups:
                rows.extend(
                    _bench_group(
                        model,
                        batch,
                        res,
                        runtimes,
                        peers,
                        peer_rts,
                        num_threads,
                        warmup,
                        repeats,
                        memory,
                        work,
                        kwargs,
                        bar,
                    )
                )
                gc.collect()
    finally:
        bar.close()
        if tmp is not None:
            tmp.cleanup()
    settings = {
        "batches": list(batches),
        "resolutions": list(resolutions) if resolutions else None,
        "runtimes": list(runtimes),
        "peers": peers,
        "threads": num_threads,
        "warmup": warmup,
        "repeats": repeats,
        "timing": "round-robin over runners of a group; median and p90 of per-call latency",
    }
    return BenchReport(rows, fingerprint(), settings)


def _bench_group(
    model: str | ModelSpec | nn.Module,
    batch: int,
    res: int | None,
    runtimes: Sequence[str],
    peers: bool,
    peer_rts: Sequence[str],
    num_threads: int | None,
    warmup: int,
    repeats: int,
    memory: bool,
    work: Path,
    kwargs: dict[str, Any],
    bar: Any,
) -> list[BenchRow]:
    name = _model_name(model)
    base = build_effnet(model, **kwargs)
    resolution = int(res or getattr(base.preprocess, "input_size", 224))
    if isinstance(model, nn.Module):
        cost = profile(model, resolution)
    else:  # on the meta device: no compute, even for the big variants
        cost = profile_spec(base.spec, resolution, num_classes=base.num_classes)
    params = count_params(base)
    plan: list[tuple[str, str]] = [("effnet", rt) for rt in runtimes]
    if peers and name in PEER_NAMES:
        for lib in ("torchvision", "timm"):
            idx = 0 if lib == "timm" else 1
            if PEER_NAMES[name][idx]:
                plan.extend((lib, rt) for rt in peer_rts)
    runners, errors, peaks = {}, {}, {}
    for lib, rt in plan:
        try:
            net = build_effnet(model, **kwargs) if lib == "effnet" else peer_model(lib, name)
            runner = make_runner(lib, rt, net, batch, resolution, work, num_threads)
            # inline: memory of the first call, where runtimes size their arenas and prepack
            # weights (a steady-state call allocates little that is new)
            inline = memory is True or memory == "inline"
            peaks[(lib, rt)] = peak_rss_delta(runner.run) if inline else None
            runners[(lib, rt)] = runner
        except Exception as exc:  # a missing optional runtime must not sink the whole run
            errors[(lib, rt)] = f"{type(exc).__name__}: {exc}"
    timings = measure_interleaved(
        {f"{lib}/{rt}": r.run for (lib, rt), r in runners.items()},
        batch=batch,
        warmup=warmup,
        repeats=repeats,
        progress=bar.update,
    )
    if memory == "subprocess" and isinstance(model, str):
        from effnet.bench.memprobe import measure_in_subprocess

        for lib, rt in runners:
            if rt != "compiled":  # compiling dominates its memory; not an inference number
                mb = measure_in_subprocess(lib, rt, name, batch, resolution, num_threads, work)
                peaks[(lib, rt)] = None if mb is None else mb * 2**20
    rows = []
    for lib, rt in plan:
        common = {
            "model": name,
            "library": lib,
            "runtime": rt,
            "batch": batch,
            "resolution": resolution,
            "threads": num_threads,
            "params": params,
            "gmacs": round(cost.gmacs, 4),
        }
        if (lib, rt) in errors:
            rows.append(
                BenchRow(
                    **common,
                    median_ms=float("nan"),
                    p90_ms=float("nan"),
                    min_ms=float("nan"),
                    images_per_s=float("nan"),
                    peak_memory_mb=None,
                    gflops_per_s=float("nan"),
                    repeats=0,
                    setup_s=0.0,
                    error=errors[(lib, rt)],
                )
            )
            continue
        runner, t = runners[(lib, rt)], timings[f"{lib}/{rt}"]
        peak = peaks[(lib, rt)]
        rows.append(
            BenchRow(
                **common,
                median_ms=round(t.median_ms, 3),
                p90_ms=round(t.p90_ms, 3),
                min_ms=round(t.min_ms, 3),
                images_per_s=round(t.images_per_s, 2),
                peak_memory_mb=None if peak is None else round(peak / 2**20, 1),
                gflops_per_s=round(2 * cost.macs * batch / (t.median_ms / 1000) / 1e9, 2),
                repeats=len(t.samples_ms),
                setup_s=round(runner.setup_seconds, 2),
                note=runner.note,
            )
        )
    _add_ratios(rows)
    return rows
