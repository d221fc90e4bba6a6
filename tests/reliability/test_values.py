"""Every value validated before any work (issue 12, "values accepted that make no sense").

For every field of the run config, a value of each kind that makes no sense (wrong type, NaN,
infinity, negative or zero counts, fractions for counts, YAML booleans for numbers, empty text,
unknown choices) is a ConfigError naming the field; on the command line it is one line, exit 2,
before the run directory is created or a picture is read. The other commands' numbers and names
(top-k, batch sizes, sizes, model names) get the same treatment.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from effnet.errors import ConfigError
from effnet.train import FinetuneConfig, load_config
from effnet.train.config import save_config
from helpers.faults import cli, one_line_error

NAN, INF = math.nan, math.inf

BAD_VALUES: dict[str, list[object]] = {
    # counts
    "seed": [-1, 2**32, 1.5, "3", True],
    "workers": [-2, 1.5],
    "head_epochs": [-1, 2.5],
    "epochs": [-1, 2.5, True, "many"],  # None: planned
    "time_budget": ["soon", "0", "-5m", "", "10 minutes"],
    "bn_recalibrate_images": [0, -1, 1.5],
    "select_by": ["precision", ""],
    "freeze_stages": [-1],
    "early_stop": [-1],
    "accum_steps": [0],
    "batch_size": [0, -8, 8.0],
    "eval_batch_size": [0],
    "threads": [-1],
    "image_size": [0, 16, 31, 100_000, 64.0],
    "magnitude": [-1, 31],
    # numbers
    "lr": [0, -1e-4, NAN, INF, True, "fast"],
    "head_lr": [0, NAN, INF, -1.0],
    "momentum": [-0.1, 1.0, NAN],
    "weight_decay": [-1.0, INF],
    "step_epochs": [0, -2.4],
    "step_gamma": [0, 1.5],
    "warmup_epochs": [-1, NAN],
    "min_lr": [-1e-6, INF],
    "mixup": [-0.1, NAN],
    "cutmix": [-1.0],
    "label_smoothing": [1.0, -0.1],
    "ema": [1.0, -0.5, NAN],
    "grad_clip": [-1.0, INF],
    "crop_pct": [0, 1.5, NAN],
    "drop_rate": [1.0, -0.1],
    "drop_path_rate": [1.0, NAN],
    "layer_decay": [0, 1.5, NAN],
    "random_erase": [-0.1, 1.5],
    # true/false
    "vflip": ["yes", 1],
    "cache_images": ["no"],
    "tta": [0],
    "sync_bn": ["true"],
    "channels_last": [None],
    "progress": ["no"],
    "compile": ["yes"],
    "grad_checkpointing": [1],
    "mlflow": ["no"],
    # text and choices
    "data": ["", "   ", 3],
    "model": ["", None],
    "weights": ["", None],
    "split": ["", "50/60", "a/b", "70/15/15/0", "nan/50/50"],
    "device": ["gpu", ""],
    "out": [""],
    "augment": ["lite", ""],
    "head_augment": ["x"],
    "optimizer": ["adam"],
    "schedule": ["cosin"],
    "balance": ["oversample"],
    "amp": ["fp8"],
    "label_mode": ["binari"],
    "progressive": ["stages=x", "stages=2"],
    "auto_augment": ["randaugment-x", 3],
    "extra": ["notes"],
}


def test_every_field_has_bad_values_here() -> None:
    """A new config field gets its bad values in this table (or says why it has none)."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    assert fields - set(BAD_VALUES) <= {"bn_recalibrate", "cache_features", "tensorboard"}, (
        "add the new fields' bad values to BAD_VALUES"
    )


@pytest.mark.parametrize(
    ("name", "value"), [(k, v) for k, values in BAD_VALUES.items() for v in values]
)
def test_a_value_that_makes_no_sense_is_refused_naming_the_field(name: str, value: object) -> None:
    label = name.split("_")[0]
    with pytest.raises(ConfigError, match=label):
        FinetuneConfig(**{name: value})


def test_values_that_agree_with_each_other() -> None:
    with pytest.raises(ConfigError, match="both phases have 0 epochs"):
        FinetuneConfig(epochs=0, head_epochs=0)
    with pytest.raises(ConfigError, match="min_lr"):
        FinetuneConfig(lr=1e-4, min_lr=1e-3)
    with pytest.raises(ConfigError, match="augment medium or heavy"):
        FinetuneConfig(progressive="stages=2,size=64:96,randaug=5:10", augment="light")
    config = FinetuneConfig()
    config.lr = INF  # a mutable dataclass: the run checks again before it starts
    with pytest.raises(ConfigError, match="lr must be a finite number"):
        config.validate()


# -- YAML: strict types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: yes\n", "lr expects a number, got True"),  # trained at lr 1.0 before
        ("epochs: 2.5\n", "epochs expects a whole number, got 2.5"),  # failed after phase 1
        ("lr: .inf\n", "lr must be a finite number"),
        ("batch_size: 0\n", "batch_size must be >= 1"),
        ("vflip: 1\n", "vflip expects true or false"),
        ("data: 2024\n", "data expects text"),
        ("weights: null\n", "weights expects text"),
        ("optimizer: adamww\n", "Did you mean adamw"),
        ("epochz: 3\n", "Did you mean epochs"),
        ("lr: 0.1\nlr: 0.2\n", "given twice"),
        ("- lr\n- 0.1\n", "mapping of config keys"),
    ],
)
def test_yaml_types_are_checked_strictly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_yaml_numbers_written_as_text_or_whole_floats_are_what_they_say(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("lr: 1e-4\nhead_lr: '3e-3'\nepochs: 4.0\nvflip: 'yes'\n")
    config = load_config(path)
    assert (config.lr, config.head_lr, config.epochs, config.vflip) == (1e-4, 3e-3, 4, True)
    assert isinstance(config.epochs, int)


def test_a_saved_config_reads_back_equal(tmp_path: Path) -> None:
    config = FinetuneConfig(lr=3e-4, epochs=3, progressive="stages=2,size=64:96", crop_pct=0.9)
    assert load_config(save_config(config, tmp_path / "c.yaml")) == config


# -- the command line: one line, exit 2, before any work ------------------------------------------


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the data is work: a test using this fixture fails if the run gets that far."""
    import effnet.train.finetuning as finetuning

    def load_source(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started reading the data")

    monkeypatch.setattr(finetuning, "load_source", load_source)


FLAGS = [
    (["--lr", "inf"], "lr must be a finite number"),  # trained to NaN, exit 0 before
    (["--lr", "nan"], "lr must be a finite number"),
    (["--head-lr", "0"], "head_lr must be a finite number > 0"),
    (["--eval-batch-size", "0"], "eval_batch_size must be >= 1"),  # "range() arg 3" before
    (["--batch-size", "-1"], "batch_size must be >= 1"),
    (["--image-size", "16"], "image_size must be in [32, 4096]"),
    (["--epochs", "-1"], "epochs must be >= 0"),
    (["--ema", "1"], "ema must be in [0, 1)"),
    (["--workers", "-2"], "workers must be >= 0"),
    (["--split", "50/60"], "must sum to 100"),
    (["--optimizer", "adamww"], "Did you mean adamw"),
    (["--augment", "meduim"], "Did you mean medium"),
    (["--device", "gpu"], "device must be"),
    (["--model", "efficientnet_lit0"], "Did you mean efficientnet_lite0"),
    (["--model", "efficientnet-b0"], "Did you mean efficientnet_b0"),
    (["--weights", "imagenet1"], "imagenet1"),
    (["--freeze-stages", "99"], "freeze_stages must be in 0..7"),
    (["--progressive", "stages=2"], "progressive schedule"),
]


@pytest.mark.parametrize(("flags", "message"), FLAGS, ids=[" ".join(f) for f, _ in FLAGS])
def test_cli_refuses_bad_flags_before_any_work(
    flags: list[str],
    message: str,
    images: Path,
    tmp_path: Path,
    no_work: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    argv = ["finetune", "--data", str(images), "--out", str(out), "--weights", "none", *flags]
    line = one_line_error(argv, capsys)
    assert message in line
    assert not out.exists()  # nothing created


def test_a_weights_file_that_is_not_there_is_named_before_any_work(
    images: Path, tmp_path: Path, no_work: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["finetune", "--data", str(images), "--out", str(tmp_path / "r")]
    line = one_line_error([*argv, "--weights", "missing/lite0.safetensors"], capsys, code=1)
    assert "no weights file at missing/lite0.safetensors" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 autocast works on a GPU")
def test_fp16_on_a_cpu_is_refused_before_any_work(
    images: Path, tmp_path: Path, no_work: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["finetune", "--data", str(images), "--out", str(tmp_path / "r"), "--amp", "fp16"]
    assert "fp16 autocast needs a CUDA device" in one_line_error(argv, capsys)
    assert not (tmp_path / "r").exists()


def test_cli_yaml_errors_name_the_file_before_any_work(
    images: Path, tmp_path: Path, no_work: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "exp1.yaml"
    for text, message in (("lr: yes\n", "lr expects a number"), ("epochs: 2.5\n", "whole")):
        config.write_text(text)
        argv = ["finetune", "--config", str(config), "--data", str(images)]
        line = one_line_error([*argv, "--out", str(tmp_path / "r")], capsys)
        assert str(config) in line and message in line
    assert not (tmp_path / "r").exists()


def test_resume_does_not_quietly_ignore_a_longer_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--resume RUN --epochs 5` ran the planned 3 epochs, exit 0, nothing said."""
    run = tmp_path / "run"
    save_config(FinetuneConfig(out=str(run), epochs=3), run / "config.yaml")
    line = one_line_error(["finetune", "--resume", str(run), "--epochs", "5"], capsys)
    assert "cannot resume" in line and "--epochs 5 (planned 3)" in line
    line = one_line_error(["finetune", "--resume", str(run), "--overwrite"], capsys)
    assert "--overwrite" in line


# -- the other commands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--topk", "0"], "topk must be"),  # printed an empty prediction before
        (["--topk", "-3"], "topk must be"),  # "selected index k out of range" before
        (["--topk", "4"], "the model has 3 classes"),
        (["--batch-size", "0"], "batch_size must be"),  # "range() arg 3 must not be zero"
    ],
)
def test_predict_numbers(
    flags: list[str],
    message: str,
    images: Path,
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["predict", str(images / "red"), "--checkpoint", str(checkpoint), *flags]
    assert message in one_line_error(argv, capsys)


def test_predict_topk_defaults_to_what_the_model_has(
    images: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(["predict", str(images / "red" / "red_00.png"), "--checkpoint",
                        str(checkpoint)], capsys)  # fmt: skip
    assert code == 0 and out.count("%") == 3  # 5 by default, 3 classes: all 3


def test_evaluate_numbers(
    images: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", str(checkpoint), "--data", str(images), "--batch-size", "0"]
    assert "batch_size must be" in one_line_error(argv, capsys)


@pytest.mark.parametrize("size", ["0", "-1", "16", "5000"])
def test_sizes_below_the_minimum_are_refused(
    size: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--resolution 0` quietly meant the default size for info and export."""
    line = one_line_error(["info", "efficientnet_b0", "--resolution", size], capsys)
    assert "resolution must be in [32, 4096]" in line
    out = tmp_path / "m.onnx"
    line = one_line_error(["export", "efficientnet_b0", "--resolution", size, "--out", str(out)],
                          capsys)  # fmt: skip
    assert "resolution must be in [32, 4096]" in line and not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["choose", "--latency-ms", "nan"], "latency budget must be a positive number"),
        (["choose", "--latency-ms", "-5"], "latency budget must be a positive number"),
        (["choose", "--latency-ms", "10", "--batch", "0"], "batch must be"),
        (["choose", "--latency-ms", "10", "--res", "8"], "resolution must be in [32, 4096]"),
        (["bench", "--runtime", "eagr"], "Did you mean eager"),
        (["bench", "--repeats", "0"], "repeats >= 1"),
    ],
)
def test_benchmark_values_are_checked_before_measuring(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """choose measured every variant for a NaN budget or a batch of 0 before."""
    assert message in one_line_error([*argv, "--no-cache"] if argv[0] == "choose" else argv, capsys)


def test_a_data_name_that_is_near_elpv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["finetune", "--data", "elvp", "--out", str(tmp_path / "run"), "--weights", "none"]
    assert "Did you mean elpv?" in one_line_error(argv, capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "near"),
    [
        (["predict", "x.jpg", "--model", "efficientnet-b0"], "efficientnet_b0"),
        (["info", "efficientnet_lit0"], "efficientnet_lite0"),
        (["weights", "efficientnet_b9"], "efficientnet_b5"),
        (["export", "efficientnet_b9"], "efficientnet_b8"),
        (["scale", "--base", "efficientnet_lit0"], "efficientnet_lite0"),
    ],
)
def test_every_name_a_user_types_gets_near_names(
    argv: list[str], near: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_error(argv, capsys)
    assert "Did you mean" in line and near in line
