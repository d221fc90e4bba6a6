"""The report of a 2,000-image run takes under 10% of the run's wall time (make test-slow)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import effnet
from effnet.report import write_report
from effnet.report.run import read_run, recompute_predictions
from helpers.report import blob_picture

pytest.importorskip("captum")
pytestmark = pytest.mark.slow


def test_report_of_a_2000_image_run_is_cheap(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("blob", "empty"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(1000):
            picture = blob_picture(rng, name == "blob")[0]
            picture.save(tmp_path / "data" / name / f"{name}_{i:04d}.png")
    config = effnet.FinetuneConfig(
        data=str(tmp_path / "data"),
        out=str(tmp_path / "run"),
        model="tf_efficientnet_lite0",
        weights="none",
        image_size=64,
        head_epochs=1,
        epochs=1,
        workers=0,
        progress=False,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dir = effnet.finetune(config).run_dir
    wall = time.perf_counter() - start
    # what the training run hands over at its end: the test and validation predictions
    recompute_predictions(read_run(run_dir), ["test", "val"])
    start = time.perf_counter()
    write_report(run_dir)
    seconds = time.perf_counter() - start
    assert seconds < 0.1 * wall, f"report {seconds:.1f} s for a {wall:.0f} s run"
