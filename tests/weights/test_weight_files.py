"""Weight files: every accepted container, effnet's own format, and clear errors for bad files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import effnet
from effnet.errors import WeightsError
from effnet.weights import (
    ConversionError,
    WeightsFileError,
    from_effnet,
    read_metadata,
    read_state_dict,
    save_model,
)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return effnet.create_model("tf_efficientnet_lite0", num_classes=4).eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return model.eval()(x)


def test_native_round_trip_keeps_architecture_classes_and_preprocessing(
    lite0: torch.nn.Module, tmp_path: Path
) -> None:
    lite0.class_names = ["a", "b", "c", "d"]
    path = save_model(lite0, tmp_path / "m")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    meta = read_metadata(path)
    assert meta["architecture"] == "tf_efficientnet_lite0"
    assert meta["classes"] == ["a", "b", "c", "d"]
    assert json.loads(path.with_suffix(".json").read_text())["spec"]["padding"] == "same"
    assert "preprocess" not in meta["spec"]  # one copy of the preprocessing: the top-level one
    loaded = effnet.load_model(path)
    assert loaded.spec == lite0.spec  # padding="same" survived
    assert loaded.class_names == ["a", "b", "c", "d"]
    assert loaded.preprocess == lite0.preprocess
    torch.testing.assert_close(logits(loaded), logits(lite0), rtol=0, atol=0)
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries


def test_custom_compound_model_round_trips(tmp_path: Path) -> None:
    model = effnet.create_model("efficientnet", phi=0.5, num_classes=3)
    loaded = effnet.load_model(save_model(model, tmp_path / "phi.safetensors"))
    assert loaded.spec == model.spec
    torch.testing.assert_close(logits(loaded), logits(model))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": sd},
        lambda sd: {"model_ema": sd},
        lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}},  # Lightning
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # DDP
    ],
    ids=["bare", "state_dict", "model", "model_ema", "lightning", "ddp"],
)
def test_torch_file_containers(lite0: torch.nn.Module, tmp_path: Path, wrap) -> None:
    path = tmp_path / "w.pth"
    torch.save(wrap(lite0.state_dict()), path)
    state, _ = read_state_dict(path)
    assert state.keys() == lite0.state_dict().keys()
    model = effnet.create_model("tf_efficientnet_lite0", pretrained=str(path))
    assert model.num_classes == 4  # the head follows the file when num_classes is not given
    torch.testing.assert_close(logits(model), logits(lite0))


def test_foreign_file_is_detected_and_converted(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("tf_efficientnet_lite0", num_classes=5).eval()
    path = tmp_path / "model.safetensors"  # what every timm file on the Hub is called
    save_file(theirs.state_dict(), str(path))
    # the model name, not the file name, says TF "SAME" padding and BN eps 1e-3
    ours = effnet.create_model("tf_efficientnet_lite0", pretrained=str(path))
    assert ours.spec.padding == "same" and ours.spec.bn_eps == 1e-3 and ours.num_classes == 5
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        # timm's own init gives ImageNet-sized logits (~15): compare relative to that scale
        torch.testing.assert_close(ours.eval()(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_pretrained_file_with_new_head_and_grayscale_stem(lite0: torch.nn.Module, tmp_path: Path):
    path = save_model(lite0, tmp_path / "m")
    gray = effnet.create_model(
        "tf_efficientnet_lite0", pretrained=str(path), num_classes=2, in_chans=1
    )
    assert gray.classifier.out_features == 2 and gray.stem.conv.weight.shape[1] == 1
    torch.testing.assert_close(gray.stem.conv.weight, lite0.stem.conv.weight.sum(1, keepdim=True))
    torch.testing.assert_close(gray.head.conv.weight, lite0.head.conv.weight)
    # a gray image through the 1-channel stem equals the RGB-replicated image through the original
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        a = gray.eval().forward_features(x)
        b = lite0.forward_features(x.expand(-1, 3, -1, -1))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_wrong_architecture_names_the_right_one(tmp_path: Path) -> None:
    path = tmp_path / "b1.safetensors"
    b1 = effnet.create_model("efficientnet_b1", num_classes=3)
    save_file(from_effnet(b1.state_dict(), b1.spec, "torchvision"), path)
    with pytest.raises(ConversionError) as info:
        effnet.create_model("efficientnet_b0", pretrained=str(path), num_classes=3)
    message = str(info.value)
    assert "does not fit efficientnet_b0" in message
    assert "148 unexpected" in message  # B1's extra blocks, named
    assert "looks like a checkpoint of efficientnet_b1" in message


def test_effnet_file_for_another_architecture(lite0: torch.nn.Module, tmp_path: Path) -> None:
    path = save_model(lite0, tmp_path / "lite0")
    with pytest.raises(WeightsError, match=r"holds weights for tf_efficientnet_lite0.*_b0"):
        effnet.create_model("efficientnet_b0", pretrained=str(path))
    # same tensors, other numerics: refused, naming the name to use
    with pytest.raises(WeightsError, match=r"padding='same' \(not 'symmetric'\).*'tf_effic"):
        effnet.create_model("efficientnet_lite0", pretrained=str(path))


def test_truncated_files(lite0: torch.nn.Module, tmp_path: Path) -> None:
    for suffix, write in (
        (".safetensors", lambda p: save_file(lite0.state_dict(), p)),
        (".pth", lambda p: torch.save(lite0.state_dict(), p)),
    ):
        path = tmp_path / f"w{suffix}"
        write(str(path))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(WeightsFileError, match="truncated"):
            read_state_dict(path)


class Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("arbitrary code ran",))


def test_pickled_objects_are_never_unpickled(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"weight": Evil()}, fh)
    with pytest.raises(WeightsFileError, match="pickles Python objects besides tensors"):
        read_state_dict(path)
    assert "arbitrary code ran" not in capsys.readouterr().out


def test_unknown_and_missing_files(tmp_path: Path) -> None:
    odd = tmp_path / "w.pth"
    odd.write_bytes(b"x" * 64)
    with pytest.raises(WeightsFileError, match=r"w\.pth is neither safetensors nor a torch"):
        read_state_dict(odd)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        effnet.create_model("efficientnet_b0", pretrained=str(tmp_path / "nope.pth"))
    with pytest.raises(KeyError, match=r"no weights tagged 'no_such_tag'.*Available: ra_in1k"):
        effnet.create_model("efficientnet_b0", pretrained="no_such_tag")
    with pytest.raises(WeightsFileError, match="not a state dict"):
        path = tmp_path / "list.pth"
        torch.save([1, 2, 3], path)
        read_state_dict(path)
