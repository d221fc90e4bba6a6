"""``--lr auto``: a learning-rate range test after phase 1, through the one training loop, on a
copy of the model; the rate it finds is the run's, saved with it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
import yaml

from effnet.train import finetune
from effnet.train.lr_find import LIMITS, START
from helpers.finetune import tiny_config
from helpers.images import make_folder

pytestmark = pytest.mark.filterwarnings("ignore:skipping")


def test_the_range_test_sets_the_runs_learning_rate(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", per_class=12, size=24)
    result = finetune(tiny_config(data, tmp_path / "run", lr="auto", epochs=1, batch_size=4))
    found = json.loads((result.run_dir / "lr_find.json").read_text())
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["lr"] == found["lr"] and LIMITS[0] <= found["lr"] <= LIMITS[1]
    lrs = found["lrs"]
    assert lrs[0] == pytest.approx(START) and all(b > a for a, b in itertools.pairwise(lrs))
    assert len(found["losses"]) == len(lrs) >= 5
    best = min(range(len(lrs)), key=found["losses"].__getitem__)
    expected = min(max(lrs[best] / 10, LIMITS[0]), LIMITS[1])
    assert found["lr"] == pytest.approx(expected)  # a decade below the lowest smoothed loss
    assert result.history[-1]["lr"] <= found["lr"]  # phase 2 ran at it (cosine from there)
    assert "lr_find_seconds" in result.timings


def test_the_range_test_leaves_the_model_alone(tmp_path: Path) -> None:
    from effnet.train.checkpoint import RunState
    from effnet.train.distributed import init_distributed
    from effnet.train.finetuning import _prepare_run
    from effnet.train.lr_find import find_lr

    data = make_folder(tmp_path / "data", per_class=8, size=24)
    config = tiny_config(data, tmp_path / "run", lr="auto", batch_size=4)
    run, _ = _prepare_run(config, init_distributed("cpu"), RunState(), None, 0.0, plan=True)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    find_lr(run, steps=8)
    after = run.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
