"""A measurement cache that cannot be written: the answer is still printed, with one warning."""

from __future__ import annotations

import argparse
import errno
import tempfile
from pathlib import Path

import pytest

import effnet.files as files_module
from effnet.bench import MeasurementCache, choose, measurement_key


def _deny_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied", str(kwargs.get("dir", "")))

    monkeypatch.setattr(files_module.tempfile, "mkstemp", denied)  # effnet.files writes it


def test_put_on_a_read_only_cache_warns_once_and_keeps_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny_writes(monkeypatch)
    cache = MeasurementCache(tmp_path / "ro")
    with pytest.warns(UserWarning, match=r"cannot write .*Permission denied.*EFFNET_CACHE"):
        cache.put(measurement_key(model="a"), {"median_ms": 1.0})
    cache.put(measurement_key(model="b"), {"median_ms": 2.0})  # no second warning
    assert cache.get(measurement_key(model="a")) == {"median_ms": 1.0}
    assert len(cache) == 2
    monkeypatch.setattr(files_module.tempfile, "mkstemp", tempfile.mkstemp)
    assert MeasurementCache(tmp_path / "ro").get(measurement_key(model="a")) is None


def test_cache_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    cache = MeasurementCache(tmp_path / "file" / "bench")
    with pytest.warns(UserWarning, match="cannot write"):
        cache.put("k", {"median_ms": 1.0})
    assert cache.get("k") == {"median_ms": 1.0}


def test_choose_with_a_read_only_cache_still_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It measured everything, then exited on PermissionError without printing the answer."""
    _deny_writes(monkeypatch)
    with pytest.warns(UserWarning, match="cannot write"):
        choice = choose(
            1e6,
            candidates=["tf_efficientnet_lite0"],
            resolution=32,
            runtime="eager",
            cache=MeasurementCache(tmp_path / "ro"),
            num_threads=1,
            warmup=1,
            repeats=1,
            progress=False,
        )
    assert choice.best is not None and choice.best.model == "tf_efficientnet_lite0"


def test_cli_choose_with_a_read_only_cache_prints_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from effnet.cli import perf

    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path))
    _deny_writes(monkeypatch)
    parser = argparse.ArgumentParser(prog="effnet")
    perf.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["choose", "--latency-ms", "100000", "--models", "tf_efficientnet_lite0", "--res", "32",
         "--runtime", "eager", "--repeats", "1", "--threads", "1"]
    )  # fmt: skip
    with pytest.warns(UserWarning, match="cannot write"):
        assert args.func(args) == 0
    assert "choose: tf_efficientnet_lite0" in capsys.readouterr().out
