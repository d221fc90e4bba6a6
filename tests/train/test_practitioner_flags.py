"""What a timm or torchvision user types works as there: --compile, --grad-checkpointing,
--layer-decay, --aa, --reprob, --model-ema; the experiment trackers (TensorBoard, MLflow) get
every epoch, and a missing tracker package stops the run with one line before its directory
exists; ``--json`` prints the run's summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

import effnet
from effnet.cli import main
from effnet.model import EfficientNet
from effnet.train import finetune
from effnet.train import finetuning as finetuning_module
from effnet.train import trackers as trackers_module
from helpers.finetune import tiny_config
from helpers.images import make_folder

pytestmark = pytest.mark.filterwarnings("ignore:skipping")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("data") / "colours", per_class=10)


def weights_of(run_dir: Path) -> dict[str, torch.Tensor]:
    return effnet.load_model(run_dir / "last.safetensors").state_dict()


def test_grad_checkpointing_trains_the_same_weights(folder: Path, tmp_path: Path) -> None:
    common = dict(weights="none", head_epochs=0, epochs=1, bn_recalibrate=False)
    plain = finetune(tiny_config(folder, tmp_path / "plain", **common))
    saved = finetune(tiny_config(folder, tmp_path / "ckpt", grad_checkpointing=True, **common))
    a, b = weights_of(plain.run_dir), weights_of(saved.run_dir)
    for key in a:  # the same step: recomputed activations, BatchNorm statistics updated once
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=key)


def test_compile_layer_decay_and_augment_flags_reach_the_training(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[torch.nn.Module] = []

    def fake_compile(model: torch.nn.Module, **kwargs: Any) -> torch.nn.Module:
        compiled.append(model)  # compiling for real takes minutes on 2 CPU cores
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    config = tiny_config(folder, tmp_path / "run", weights="none", head_epochs=0, epochs=1,
                         compile=True, layer_decay=0.5, auto_augment="rand-m9-mstd0.5",
                         random_erase=0.5, ema=0.9, augment="light")  # fmt: skip
    result = finetune(config)
    assert len(compiled) == 1 and isinstance(compiled[0], EfficientNet)
    assert result.history[-1]["lr"] > 0 and result.report["test"]["num_samples"] > 0


def run_argv(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", "--data", str(folder), "--out", str(out), "--weights", "none",
            "--image-size", "32", "-b", "8", "-j", "0", "--split", "60/20/20", "--head-epochs",
            "1", "--epochs", "1", "--eval-batch-size", "16", *extra]  # fmt: skip


def test_json_prints_the_runs_summary(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(run_argv(folder, tmp_path / "run", "--json")) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # stdout is the JSON alone; the log went to stderr
    assert summary["run_dir"] == str(tmp_path / "run")
    assert 0 <= summary["accuracy"] <= 1 and 0 <= summary["balanced_accuracy"] <= 1
    assert Path(summary["best_checkpoint"]).is_file()
    assert {"report", "metrics"} <= set(summary["files"])
    assert summary["timings"]["wall_seconds"] > 0
    assert "effnet finetune: tf_efficientnet_lite0" in captured.err


@pytest.mark.parametrize(
    ("flag", "module"), [("--tensorboard", "tensorboard"), ("--mlflow", "mlflow")]
)
def test_a_missing_tracker_is_one_line_and_no_run_directory(
    folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    module: str,
) -> None:
    real = trackers_module.importlib.util.find_spec
    monkeypatch.setattr(trackers_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real(name, *a))  # fmt: skip
    line = one_line_error(run_argv(folder, tmp_path / "run", flag), capsys)
    assert f"pip install 'effnet[{module}]'" in line and flag in line
    assert not (tmp_path / "run").exists()


class Recorder:
    calls: ClassVar[list[tuple[str, Any]]] = []

    def __init__(self, *args: Any) -> None:
        Recorder.calls.append(("open", args[-1]))

    def log_epoch(self, metrics: dict[str, float], step: int) -> None:
        Recorder.calls.append(("epoch", (step, sorted(metrics))))

    def close(self) -> None:
        Recorder.calls.append(("close", None))


def test_trackers_get_every_epoch_and_are_closed(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the packages need not be installed: the check and both sinks are stood in for
    monkeypatch.setattr(trackers_module, "check_trackers", lambda config: None)
    monkeypatch.setattr(finetuning_module, "check_trackers", lambda config: None)
    monkeypatch.setattr(trackers_module, "_TensorBoard", Recorder)
    monkeypatch.setattr(trackers_module, "_MLflow", Recorder)
    Recorder.calls = []
    finetune(tiny_config(folder, tmp_path / "run", weights="none", tensorboard=True, mlflow=True))
    kinds = [kind for kind, _ in Recorder.calls]
    assert kinds == ["open", "open"] + ["epoch"] * 6 + ["close", "close"]  # 3 epochs, 2 sinks
    steps = [value[0] for kind, value in Recorder.calls if kind == "epoch"]
    assert steps == [1, 1, 2, 2, 3, 3]
    assert "val_acc" in Recorder.calls[2][1][1] and "lr" in Recorder.calls[2][1][1]


def test_tensorboard_and_mlflow_for_real(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("sqlalchemy")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = finetune(tiny_config(folder, tmp_path / "runs" / "a", weights="none", tensorboard=True,
                               mlflow=True))  # fmt: skip
    assert list((run.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("effnet").experiment_id])
    assert [r.info.run_name for r in found] == ["a"] and found[0].info.status == "FINISHED"
    assert found[0].data.params["model"] == "tf_efficientnet_lite0"
    history = client.get_metric_history(found[0].info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2, 3]


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``effnet ARGV``: it fails with exit code 2 and one line on stderr, returned."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()
