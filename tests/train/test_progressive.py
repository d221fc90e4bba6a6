"""EfficientNetV2 progressive learning: schedule values, real image sizes, resume mid-stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import effnet.train.loop as loop
from effnet.train import finetune, resume
from effnet.train.checkpoint import load_run_state
from effnet.train.progressive import ProgressiveSchedule
from helpers.finetune import tiny_config
from helpers.images import make_folder

V2_S = "stages=4,size=128:300,randaug=5:15,mixup=0:0.2,dropout=0.1:0.3"


def test_schedule_values_per_stage() -> None:
    s = ProgressiveSchedule.parse(V2_S)
    rows = [v.to_dict() for v in s.table(12)]
    assert [r["epochs"] for r in rows] == ["1-3", "4-6", "7-9", "10-12"]
    assert [r["size"] for r in rows] == [128, 184, 240, 300]  # ends exact, middle on 8s
    assert [r["randaug"] for r in rows] == [5, 8, 12, 15]
    assert [r["mixup"] for r in rows] == pytest.approx([0.0, 0.0667, 0.1333, 0.2], abs=1e-4)
    assert [r["dropout"] for r in rows] == pytest.approx([0.1, 0.1667, 0.2333, 0.3], abs=1e-4)
    assert s.at_epoch(0, 12).stage == 0 and s.at_epoch(11, 12).stage == 3
    # uneven: earlier stages take the remainder; fewer epochs than stages keeps both ends
    assert [v.epochs for v in s.table(10)] == [(0, 2), (3, 5), (6, 7), (8, 9)]
    assert [v.size for v in s.table(2)] == [128, 300]
    assert ProgressiveSchedule.parse(s.to_text()) == s
    recipe = ProgressiveSchedule.from_dict({"stages": 4, "size": [128, 300], "randaug": [5, 15]})
    assert recipe.stage(1, 8).magnitude == 8


def test_bad_schedules_name_the_fix() -> None:
    with pytest.raises(ValueError, match="needs at least stages= and size="):
        ProgressiveSchedule.parse("randaug=5:15")
    with pytest.raises(ValueError, match="keys: stages"):
        ProgressiveSchedule.parse("stages=2,size=128:224,colour=1:2")
    with pytest.raises(ValueError, match="dropout must stay"):
        ProgressiveSchedule.parse("stages=2,size=128:224,dropout=0.1:1.5")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("data") / "colours", per_class=10, size=72)


def test_loader_yields_each_stage_size_and_dropout(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, float]] = []
    real = loop.train_one_epoch

    def spy(setup, loader, *args, **kwargs):
        images, _ = next(iter(loader))
        seen.append((images.shape[-1], setup.model.dropout.p))
        return real(setup, loader, *args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", spy)
    result = finetune(
        tiny_config(
            folder,
            tmp_path / "p",
            weights="none",
            head_epochs=0,
            epochs=4,
            augment="medium",
            image_size=64,
            progressive="stages=2,size=32:64,randaug=2:10,dropout=0.1:0.4",
        )
    )
    assert seen == [(32, 0.1), (32, 0.1), (64, 0.4), (64, 0.4)]
    assert [row["size"] for row in result.history] == [32, 32, 64, 64]  # logged per epoch
    assert result.report["image_size"] == 64  # evaluated at the final size


def test_randaug_schedule_needs_a_randaug_preset(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use --augment medium or heavy"):
        finetune(
            tiny_config(
                folder,
                tmp_path / "x",
                weights="none",
                head_epochs=0,
                epochs=1,
                augment="light",
                progressive="stages=2,size=32:64,randaug=2:10",
            )
        )


def test_resume_in_the_middle_of_a_stage(folder: Path, tmp_path: Path) -> None:
    config = dict(
        weights="none",
        head_epochs=0,
        epochs=4,
        augment="medium",
        image_size=48,
        progressive="stages=2,size=32:48,randaug=2:10,mixup=0:0.3,dropout=0:0.2",
    )
    whole = finetune(tiny_config(folder, tmp_path / "whole", **config))
    calls = {"n": 0}

    def kill() -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # 2 steps an epoch: the middle of epoch 3 (stage 2's first)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(tiny_config(folder, tmp_path / "killed", **config), on_step=kill)
    rows = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["size"] for r in rows] == [32, 32]
    resumed = resume(tmp_path / "killed")
    assert [r["size"] for r in resumed.history] == [32, 32, 48, 48]
    assert resumed.report["test"] == whole.report["test"]
    a = load_run_state(whole.run_dir).model
    b = load_run_state(resumed.run_dir).model
    assert a is not None and b is not None
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
