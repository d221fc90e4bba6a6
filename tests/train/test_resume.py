"""What a resumed run may change: how it executes and, where the maths allows, its length."""

from __future__ import annotations

from pathlib import Path

import pytest

from effnet.cli import main
from effnet.errors import ConfigError, RunDirError
from effnet.train import FinetuneConfig
from effnet.train.config import save_config
from effnet.train.finetuning import resume_config


def saved_run(tmp_path: Path, **fields: object) -> Path:
    run = tmp_path / "run"  # a run saves its config resolved: planned values are numbers
    planned: dict[str, object] = {"epochs": 8, "lr": 1e-4, "image_size": 224, **fields}
    save_config(FinetuneConfig(out=str(run), **planned), run / "config.yaml")
    return run


def test_execution_settings_may_change(tmp_path: Path) -> None:
    run = saved_run(tmp_path)
    config = resume_config(run, workers=3, progress=False, early_stop=2, tta=True)
    assert (config.workers, config.progress, config.early_stop, config.tta) == (3, False, 2, True)
    assert config.out == str(run) and config.lr == 1e-4


def test_what_the_finished_epochs_computed_may_not(tmp_path: Path) -> None:
    run = saved_run(tmp_path)
    with pytest.raises(ConfigError, match="cannot change seed, lr: the finished epochs"):
        resume_config(run, lr=1.0, seed=3)
    assert resume_config(run, lr=1e-4).lr == 1e-4  # unchanged: fine
    with pytest.raises(ConfigError, match="unknown config key"):
        resume_config(run, epochz=3)


def test_epochs_extend_only_under_a_schedule_that_does_not_depend_on_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cosine decay was planned"):
        resume_config(saved_run(tmp_path / "a"), epochs=12)
    with pytest.raises(ConfigError, match="end before"):
        resume_config(saved_run(tmp_path / "b", schedule="constant"), epochs=2)
    progressive = saved_run(tmp_path / "c", schedule="step", progressive="stages=2,size=64:96")
    with pytest.raises(ConfigError, match="progressive schedule"):
        resume_config(progressive, epochs=12)
    assert resume_config(saved_run(tmp_path / "d", schedule="step"), epochs=12).epochs == 12


def test_the_command_line_refuses_a_flag_it_cannot_honour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = saved_run(tmp_path)
    assert main(["finetune", "--resume", str(run), "--lr", "0.5"]) == 2
    assert "cannot change lr" in capsys.readouterr().err
    assert main(["finetune", "--resume", str(run), "--config", "x.yaml"]) == 2
    with pytest.raises(RunDirError, match=r"no config\.yaml"):
        resume_config(tmp_path / "nowhere")
