"""Timing and memory measurement: warm-up, interleaved repeats, medians, peak memory.

Shared CPUs drift by tens of percent within a minute, so :func:`measure_interleaved` times the
competitors in alternation (round-robin, one call each per round): a slow spell hits all of them
and the ratios of medians stay meaningful even when the absolute numbers move.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from effnet.errors import ConfigError

__all__ = [
    "Timing",
    "measure_interleaved",
    "peak_rss_delta",
    "peak_tensor_bytes",
    "saved_tensor_bytes",
    "status_kb",
    "time_fn",
]


@dataclass
class Timing:
    """Latency samples of one callable (milliseconds per call) and their summary."""

    batch: int
    samples_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        s = sorted(self.samples_ms)
        return s[min(len(s) - 1, round(0.9 * (len(s) - 1)))]

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)

    @property
    def images_per_s(self) -> float:
        return 1000.0 * self.batch / self.median_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "median_ms": round(self.median_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "min_ms": round(self.min_ms, 3),
            "images_per_s": round(self.images_per_s, 2),
            "repeats": len(self.samples_ms),
        }


def time_fn(fn: Callable[[], Any], batch: int = 1, warmup: int = 3, repeats: int = 10) -> Timing:
    """Time ``fn`` after ``warmup`` untimed calls; one sample per call."""
    return measure_interleaved({"fn": fn}, batch, warmup, repeats)["fn"]


def measure_interleaved(
    fns: dict[str, Callable[[], Any]],
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Timing]:
    """Warm every callable up, then time them round-robin ``repeats`` times."""
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    timings = {name: Timing(batch) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            timings[name].samples_ms.append(1000.0 * (time.perf_counter() - start))
        if progress is not None:
            progress(1)
    return timings


def status_kb(field_name: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``); None off Linux."""
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{field_name}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def peak_rss_delta(fn: Callable[[], Any]) -> int | None:
    """Peak resident memory above the current level while ``fn`` runs, in bytes.

    Linux only (None elsewhere): resets the process's high-water mark through
    ``/proc/self/clear_refs`` and reads ``VmHWM`` afterwards. This sees every allocator (torch,
    ONNX Runtime's arena, OpenVINO), but memory a library cached before the call and reuses
    counts as already resident.
    """
    before = status_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    fn()
    peak = status_kb("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) * 1024


def peak_tensor_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """(result, peak bytes of tensor storage created while ``fn`` ran and still alive).

    The CPU analogue of ``torch.cuda.max_memory_allocated``: every op (backward included) is
    intercepted with a dispatch mode and its outputs' storages are tracked until they die.
    Tensors that existed before the call (parameters, optimizer state) are not counted;
    allocator caching and library scratch space are invisible, which makes the number
    independent of the allocator and exactly comparable between models.
    """
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    # weak references to the C++ storages: autograd keeps saved tensors alive without any
    # Python object, so a weakref to the tensor wrapper would die too early
    live: dict[int, tuple[StorageWeakRef, int]] = {}
    state = {"current": 0, "peak": 0}

    def sweep() -> None:
        for key in [k for k, (ref, _) in live.items() if ref.expired()]:
            state["current"] -= live.pop(key)[1]

    class Tracker(TorchDispatchMode):
        def __torch_dispatch__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and t.device.type != "meta":
                    ref = StorageWeakRef(t.untyped_storage())
                    if ref.cdata not in live:
                        nbytes = t.untyped_storage().nbytes()
                        live[ref.cdata] = (ref, nbytes)
                        state["current"] += nbytes
            sweep()
            state["peak"] = max(state["peak"], state["current"])
            return out

    with Tracker():
        result = fn()
    return result, state["peak"]


def saved_tensor_bytes(fn: Callable[[], Any], exclude: Iterable[Any] = ()) -> tuple[Any, int]:
    """(result, bytes autograd keeps for backward while running ``fn``), storages de-duplicated.

    This is the activation memory of a training step: what memory-efficient layers reduce.
    Tensors in ``exclude`` (e.g. ``model.parameters()``, which exist anyway) are not counted.
    """
    import torch

    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    return result, sum(seen.values())
