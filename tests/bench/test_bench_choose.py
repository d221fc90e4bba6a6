"""choose(): the most accurate variant within budget, the Pareto table, the plot, the cache."""

from __future__ import annotations

import argparse
import json
import os
import sys

import pytest

from effnet.bench import (
    ChoiceRow,
    MeasurementCache,
    cache_dir,
    choose,
    fingerprint,
    fingerprint_key,
    measurement_key,
    pareto_front,
    published_top1,
)
from effnet.cli import perf
from helpers.torch_threads import one_torch_thread as one_torch_thread  # autouse

TWO = ["efficientnet_b0", "tf_efficientnet_lite0"]


def _choose(tmp_path, budget: float, **kwargs):
    return choose(
        budget,
        candidates=TWO,
        resolution=32,
        runtime="eager",
        cache=MeasurementCache(tmp_path / "cache"),
        warmup=1,
        repeats=2,
        progress=False,
        **kwargs,
    )


def test_choose_two_tiny_variants(tmp_path, monkeypatch) -> None:
    plot = tmp_path / "choose.png"
    choice = _choose(tmp_path, 1e6, plot=plot)
    assert choice.best is not None
    assert choice.best.model == "efficientnet_b0"  # higher published top-1, both within budget
    assert {r.model for r in choice.rows} == set(TWO)
    assert all(r.latency_ms and r.within_budget and not r.cached for r in choice.rows)
    assert any(r.pareto for r in choice.rows)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(choice.to_dict())

    # the second call is answered from the cache
    again = _choose(tmp_path, 1e6)
    assert all(r.cached for r in again.rows)
    assert [r.latency_ms for r in again.rows] == [r.latency_ms for r in choice.rows]

    # a minimum top-1 no candidate reaches, and a budget nothing meets, leave no pick
    assert _choose(tmp_path, 1e6, min_top1=99.0).best is None
    none = _choose(tmp_path, 1e-6)
    assert none.best is None and "no variant meets" in none.notes[0]

    # without matplotlib the pick and the table still come back, with a note instead of a plot
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
        bare = _choose(tmp_path, 1e6, plot=tmp_path / "bare.png")
    assert bare.best is not None and bare.best.model == "efficientnet_b0" and bare.plot is None
    assert not (tmp_path / "bare.png").exists()
    assert any("matplotlib" in note for note in bare.notes)


def test_pareto_front() -> None:
    rows = [
        ChoiceRow("fast", 70.0, "", 224, 0.1, 1, latency_ms=1.0),
        ChoiceRow("dominated", 69.0, "", 224, 0.2, 1, latency_ms=2.0),
        ChoiceRow("accurate", 80.0, "", 224, 1.0, 1, latency_ms=5.0),
        ChoiceRow("unmeasured", 90.0, "", 224, 9.0, 1),
    ]
    assert [r.model for r in pareto_front(rows)] == ["fast", "accurate"]


def test_published_top1_and_candidates() -> None:
    top1, _, source = published_top1("efficientnet_b0")
    assert top1 == pytest.approx(77.692) and source
    with pytest.raises(ValueError, match="budget"):
        choose(0)


def test_cache_invalidates_when_hardware_or_versions_change(tmp_path) -> None:
    fp = fingerprint()
    key = measurement_key(model="efficientnet_b0", runtime="onnx", batch=1)
    MeasurementCache(tmp_path, fp).put(key, {"median_ms": 3.0})
    assert MeasurementCache(tmp_path, fp).get(key) == {"median_ms": 3.0}

    upgraded = {**fp, "versions": {**fp["versions"], "onnxruntime": "99.0"}}
    other_cpu = {**fp, "cpu": {**fp["cpu"], "model": "Some Other CPU", "flags": []}}
    for changed in (upgraded, other_cpu):
        assert fingerprint_key(changed) != fingerprint_key(fp)
        assert MeasurementCache(tmp_path, changed).get(key) is None
    # ... and the original entries are still there for the original machine
    assert MeasurementCache(tmp_path, fp).get(key) == {"median_ms": 3.0}
    # a file copied under the wrong name is not trusted either
    cache = MeasurementCache(tmp_path, fp)
    os.replace(cache.path, MeasurementCache(tmp_path, upgraded).path)
    assert MeasurementCache(tmp_path, upgraded).get(key) is None
    # writes are atomic: no temporary files are left behind
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("EFFNET_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "effnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "effnet"


def test_cli_choose(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path))
    parser = argparse.ArgumentParser(prog="effnet")
    perf.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "choose",
            "--latency-ms",
            "100000",
            "--models",
            ",".join(TWO),
            "--res",
            "32",
            "--runtime",
            "eager",
            "--repeats",
            "1",
            "--plot",
            str(tmp_path / "p.png"),
        ]
    )
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "choose: efficientnet_b0" in text and "pareto" in text
    assert (tmp_path / "p.png").is_file()
    assert list((tmp_path / "bench").glob("measurements-*.json"))
