"""Files that crash or mislead (issue 12): every file effnet reads, broken in every way a file
breaks, gives one line that names the file, says what it really is and what to do. Nothing in a
file is ever executed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import effnet
from effnet.errors import WeightsError
from effnet.train import FinetuneConfig
from effnet.train.checkpoint import STATE_FILE
from effnet.train.config import save_config
from effnet.weights import read_state_dict, save_model, write_safetensors
from helpers.faults import (
    cli,
    one_line_error,
    onnx_like,
    pickled_checkpoint,
    random_file,
    resnet18_state,
    safetensors_with_metadata,
    truncated_copy,
)

BROKEN = {
    "truncated": ("truncated or corrupt", 2),
    "random": ("neither safetensors nor a torch checkpoint", 2),
    "resnet18": ("not an EfficientNet state dict", 2),
    "pickled": ("pickles Python objects", 2),
    "onnx": ("is an ONNX model", 2),
}


@pytest.fixture(scope="module")
def broken(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("broken")
    return {
        "truncated": truncated_copy(checkpoint, folder / "truncated.safetensors"),
        "random": random_file(folder / "random.pth"),
        "resnet18": resnet18_state(folder / "resnet18.pth"),
        "pickled": pickled_checkpoint(folder / "pickled.pt"),
        "onnx": onnx_like(folder / "model.pth"),  # an ONNX file under a weights name
    }


@pytest.mark.parametrize("kind", BROKEN)
def test_predict_says_what_a_broken_checkpoint_is(
    kind: str, broken: dict[str, Path], images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All five said "carries no effnet metadata ... pass the variant name" before."""
    path = broken[kind]
    line = one_line_error(["predict", str(images / "red"), "--checkpoint", str(path)], capsys)
    assert str(path) in line and BROKEN[kind][0] in line
    assert "pass the variant name" not in line


@pytest.mark.parametrize("kind", BROKEN)
def test_evaluate_says_what_a_broken_checkpoint_is(
    kind: str, broken: dict[str, Path], images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = broken[kind]
    line = one_line_error(["evaluate", str(path), "--data", str(images)], capsys)
    assert str(path) in line and BROKEN[kind][0] in line


@pytest.mark.parametrize("kind", ["truncated", "random", "pickled", "onnx"])
def test_convert_and_export_say_what_a_broken_checkpoint_is(
    kind: str, broken: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = broken[kind]
    for argv in (
        ["convert", str(path), str(tmp_path / "out.safetensors"), "--model", "efficientnet_b0"],
        ["export", str(path), "--out", str(tmp_path / "out.onnx")],
    ):
        line = one_line_error(argv, capsys)
        assert str(path) in line and BROKEN[kind][0] in line
    assert not list(tmp_path.iterdir())


def test_metadata_that_is_a_json_list(
    tmp_path: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An AttributeError traceback (predict, create_model) before."""
    path = safetensors_with_metadata(tmp_path / "list.safetensors", ["not", "an", "object"])
    line = one_line_error(["predict", str(images / "red"), "--checkpoint", str(path)], capsys)
    assert str(path) in line and "JSON list" in line
    with pytest.raises(WeightsError, match="JSON list"):
        effnet.create_model("efficientnet_b0", pretrained=str(path))


@pytest.fixture(scope="module")
def five_rows_three_names(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint whose head has 5 rows while its metadata names 3 classes."""
    model = effnet.create_model("tf_efficientnet_lite0", num_classes=5)
    path = save_model(model, tmp_path_factory.mktemp("head") / "five.safetensors")
    state, meta = read_state_dict(path)
    return write_safetensors(path, state, {**meta, "classes": ["blue", "green", "red"]})


def test_a_head_that_disagrees_with_its_class_names_is_refused_everywhere(
    five_rows_three_names: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """predict printed five classes with invented names, evaluate crashed on a reshape,
    convert and export passed the file on."""
    path = str(five_rows_three_names)
    for argv in (
        ["predict", str(images / "red"), "--checkpoint", path],
        ["evaluate", path, "--data", str(images)],
        ["convert", path, str(tmp_path / "c.safetensors")],
        ["export", path, "--out", str(tmp_path / "e.onnx")],
    ):
        line = one_line_error(argv, capsys)
        assert path in line and "5 rows" in line and "3 classes" in line
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def bare_state_dict(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3-class model's tensors alone: no metadata, no class names."""
    state, _ = read_state_dict(checkpoint)
    path = tmp_path_factory.mktemp("bare") / "bare.pth"
    torch.save(state, path)
    return path


def test_model_is_honoured_with_checkpoint(
    bare_state_dict: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model was ignored when --checkpoint was given, so the advice could not be followed."""
    picture = str(images / "red" / "red_00.png")
    line = one_line_error(["predict", picture, "--checkpoint", str(bare_state_dict)], capsys)
    assert "network is unknown" in line and "--model" in line  # the advice ...
    argv = ["predict", picture, "--checkpoint", str(bare_state_dict)]
    code, out, err = cli([*argv, "--model", "tf_efficientnet_lite0"], capsys)
    assert code == 0, err  # ... can be followed
    assert out.count("%") == 3
    argv = ["evaluate", str(bare_state_dict), "--data", str(images)]
    line = one_line_error([*argv, "--model", "tf_efficientnet_lite0"], capsys)
    assert "network is unknown" not in line and "classes" in line  # past the network question


def test_num_classes_follows_a_weights_file(checkpoint: Path) -> None:
    """create_model(name, pretrained="my_3_class.safetensors") gave 1000 classes, a fresh
    head, no warning."""
    model = effnet.create_model("tf_efficientnet_lite0", pretrained=str(checkpoint))
    assert model.num_classes == 3 and model.class_names == ["blue", "green", "red"]


# -- the run state and the config ----------------------------------------------------------------


def _run_dir(tmp_path: Path, images: Path) -> Path:
    """A run directory as far as --resume needs before it reads the state: its config."""
    run = tmp_path / "run"
    save_config(FinetuneConfig(data=str(images), out=str(run), weights="none"), run / "config.yaml")
    return run


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (pickled_checkpoint, "pickles Python objects"),
        (random_file, "not a readable run state"),
        (lambda p: torch.save([1, 2, 3], p), "not a run state effnet wrote"),
        (lambda p: torch.save({"phase": "full", "epoch": "two"}, p), "its epoch"),
        (None, "truncated or corrupt"),
    ],
    ids=["pickled", "random", "a list", "wrong types", "truncated"],
)
def test_a_run_state_that_cannot_be_resumed_is_named(
    make: object,
    says: str,
    images: Path,
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Raw tracebacks before (nothing executed); a truncated file's message lacked its name."""
    run = _run_dir(tmp_path, images)
    state = run / STATE_FILE
    if make is None:
        truncated_copy(finished_run / STATE_FILE, state)
    else:
        make(state)  # type: ignore[operator]
    line = one_line_error(["finetune", "--resume", str(run)], capsys)
    assert str(state) in line and says in line and "--overwrite" in line


def test_a_yaml_tag_is_never_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    config = tmp_path / "exp.yaml"
    config.write_text(f"lr: !!python/object/apply:os.system ['touch {marker}']\n")
    line = one_line_error(["finetune", "--config", str(config)], capsys)
    assert str(config) in line and "!!python/object/apply:os.system" in line
    assert "Remove the tag" in line and not marker.exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"lr: [1, 2\nepochs: 3\n", "not valid YAML"),
        (b"lr:\t0.1\n", "line 1"),
        (b"\xff\xfe\x00l\x00r", "not a text file"),
        (b"lr: 0.1\nlr: 0.2\n", "given twice"),
    ],
    ids=["syntax", "tab", "binary", "duplicate"],
)
def test_a_config_that_is_not_a_config(
    content: bytes, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "exp.yaml"
    config.write_bytes(content)
    line = one_line_error(["finetune", "--config", str(config)], capsys)
    assert str(config) in line and says in line
    line = one_line_error(["finetune", "--config", str(tmp_path / "none.yaml")], capsys)
    assert "no config file at" in line


def test_a_broken_config_in_a_run_being_resumed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("lr: [1, 2\n")
    line = one_line_error(["finetune", "--resume", str(run)], capsys)
    assert str(run / "config.yaml") in line and "not valid YAML" in line
