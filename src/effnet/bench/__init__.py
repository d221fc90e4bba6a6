"""Measurement on this machine: latency, throughput, memory, peers, and the variant chooser.

* :func:`bench` -- models x runtimes x batch sizes, with timm's and torchvision's same variant
  timed in the same loop (``peers=True``) and the ratios reported;
* :func:`choose` -- the most accurate variant within a latency budget, from measurements cached
  per hardware + library versions, with the Pareto table and a plot;
* timing and memory helpers used by ``benchmarks/``.
"""

from effnet.bench.cache import MeasurementCache, cache_dir, measurement_key
from effnet.bench.choose import (
    Choice,
    ChoiceRow,
    choose,
    pareto_front,
    plot_choice,
    published_top1,
)
from effnet.bench.hardware import cpu_info, fingerprint, fingerprint_key, library_versions
from effnet.bench.runners import EFFNET_RUNTIMES, PEER_NAMES, PEER_RUNTIMES, make_runner, peer_model
from effnet.bench.suite import BenchReport, BenchRow, bench
from effnet.bench.timing import (
    Timing,
    measure_interleaved,
    peak_rss_delta,
    peak_tensor_bytes,
    saved_tensor_bytes,
    time_fn,
)

__all__ = [
    "EFFNET_RUNTIMES",
    "PEER_NAMES",
    "PEER_RUNTIMES",
    "BenchReport",
    "BenchRow",
    "Choice",
    "ChoiceRow",
    "MeasurementCache",
    "Timing",
    "bench",
    "cache_dir",
    "choose",
    "cpu_info",
    "fingerprint",
    "fingerprint_key",
    "library_versions",
    "make_runner",
    "measure_interleaved",
    "measurement_key",
    "pareto_front",
    "peak_rss_delta",
    "peak_tensor_bytes",
    "peer_model",
    "plot_choice",
    "published_top1",
    "saved_tensor_bytes",
    "time_fn",
]
