"""bench(): rows, ratios against peers measured in the same loop, timing and memory helpers.

No timing assertions: the machine is shared, only the structure of the results is checked.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from effnet.bench import (
    EFFNET_RUNTIMES,
    Timing,
    bench,
    measure_interleaved,
    peak_rss_delta,
    peak_tensor_bytes,
    saved_tensor_bytes,
)
from effnet.cli import perf
from effnet.registry import get_spec
from effnet.specs import StageSpec
from helpers.torch_threads import one_torch_thread as one_torch_thread  # autouse


def test_bench_two_small_variants_with_peers() -> None:
    report = bench(
        ["efficientnet_b0", "tf_efficientnet_lite0"],
        batches=[1, 2],
        resolutions=[32],
        runtimes=["eager", "optimized"],
        peers=True,
        peer_runtimes=["eager"],
        num_threads=1,
        warmup=1,
        repeats=2,
        memory="inline",
        progress=False,
    )
    keys = {(r.model, r.library, r.runtime, r.batch) for r in report.rows}
    for batch in (1, 2):
        assert ("efficientnet_b0", "effnet", "optimized", batch) in keys
        assert ("efficientnet_b0", "torchvision", "eager", batch) in keys
        assert ("efficientnet_b0", "timm", "eager", batch) in keys
        assert ("tf_efficientnet_lite0", "timm", "eager", batch) in keys  # timm's own name
        assert ("tf_efficientnet_lite0", "torchvision", "eager", batch) not in keys  # none in tv
    for row in report.rows:
        assert not row.error, row.error
        assert row.median_ms > 0 and row.p90_ms >= row.median_ms >= row.min_ms
        # the rows keep exact numbers: derived ones agree with what they derive from
        assert row.images_per_s == pytest.approx(1000 * row.batch / row.median_ms, rel=1e-9)
        assert row.gflops_per_s == pytest.approx(
            2 * row.gmacs * row.batch / (row.median_ms / 1000), rel=1e-9
        )
        assert row.repeats == 2
    b0 = next(r for r in report.rows if r.library == "effnet" and r.model == "efficientnet_b0")
    assert b0.params == 5_288_548
    assert set(b0.ratios) >= {"torchvision/eager", "timm/eager", "effnet/optimized"}
    json.dumps(report.to_dict())  # JSON-ready, environment included
    assert report.environment["cpu"]["usable_cores"] >= 1


def test_bench_onnx_runtime_and_unknown_runtime() -> None:
    tiny = get_spec("efficientnet_lite0").replace(
        name="tiny", stages=(StageSpec("mbconv", 1, 3, 2, 4, 16),), head_channels=32
    )
    report = bench(
        [tiny],
        resolutions=[32],
        runtimes=["onnx"],
        warmup=1,
        repeats=1,
        memory=False,
        progress=False,
    )
    (row,) = report.rows
    assert row.runtime == "onnx" and not row.error and math.isfinite(row.median_ms)
    with pytest.raises(ValueError, match="unknown runtime"):
        bench(["efficientnet_b0"], runtimes=["tensorrt"], progress=False)
    assert "openvino" in EFFNET_RUNTIMES


def test_interleaved_timing_calls_each_function() -> None:
    calls = {"a": 0, "b": 0}

    def a() -> None:
        calls["a"] += 1

    def b() -> None:
        calls["b"] += 1

    timings = measure_interleaved({"a": a, "b": b}, batch=4, warmup=2, repeats=5)
    assert calls == {"a": 7, "b": 7}
    t = timings["a"]
    assert len(t.samples_ms) == 5
    fixed = Timing(batch=4, samples_ms=[10.0, 20.0, 30.0, 40.0, 50.0])
    assert fixed.median_ms == 30.0 and fixed.p90_ms == 50.0 and fixed.min_ms == 10.0
    assert fixed.images_per_s == pytest.approx(4 / 0.03)
    with pytest.raises(ValueError, match="repeats"):
        measure_interleaved({"a": a}, repeats=0)


def test_memory_helpers_see_allocations() -> None:
    def allocate() -> torch.Tensor:
        scratch = torch.ones(4_000_000)  # 16 MB, freed before returning
        kept = torch.ones(1_000_000) + scratch[:1]  # 4 MB, returned
        return kept

    result, peak = peak_tensor_bytes(allocate)
    assert result.numel() == 1_000_000
    assert 20_000_000 <= peak < 30_000_000

    rss = peak_rss_delta(lambda: torch.ones(50_000_000).sum())  # 200 MB touched
    assert rss is None or rss > 100 * 2**20

    lin = torch.nn.Linear(1000, 1000)
    _, saved = saved_tensor_bytes(lambda: lin(torch.randn(64, 1000, requires_grad=True)))
    assert saved >= 64 * 1000 * 4  # the input is kept for the weight gradient


def test_memory_probe_in_a_fresh_process(tmp_path) -> None:
    from effnet.bench.memprobe import measure_in_subprocess

    mb = measure_in_subprocess("effnet", "eager", "efficientnet_lite0", 2, 64, 1, tmp_path)
    if mb is None:  # not Linux
        pytest.skip("peak RSS needs /proc")
    assert mb > 15  # at least Lite0's 4.7M fp32 weights (18 MB)


def test_cli_bench_json(capsys) -> None:
    parser = argparse.ArgumentParser(prog="effnet")
    perf.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "bench",
            "efficientnet_lite0",
            "--batch",
            "1",
            "--res",
            "32",
            "--runtime",
            "eager",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--json",
        ]
    )
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0]["runtime"] == "eager"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--batch", "0"])
