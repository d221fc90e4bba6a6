"""The report of a 2,000-image run takes under 10% of the run's wall time (make test-slow)."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import effnet
from effnet.report import write_report
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = effnet.finetune(config)
    # the run measures what the report costs it: the calibration pass and writing the page
    timings = json.loads((result.run_dir / "report.json").read_text())["timings"]
    assert (result.run_dir / "report.html").is_file()
    spent = timings["report_seconds"] + timings["calibration_seconds"]
    assert timings["report_fraction"] == pytest.approx(spent / timings["wall_seconds"], rel=0.05)
    assert timings["report_fraction"] < 0.1, (
        f"report {spent:.1f} s of a {timings['wall_seconds']:.0f} s run"
    )
    # and `effnet report` on the finished run (predictions saved, nothing to recompute)
    start = time.perf_counter()
    write_report(result.run_dir)
    seconds = time.perf_counter() - start
    assert seconds < 0.1 * timings["wall_seconds"], f"effnet report took {seconds:.1f} s"
