"""Classifying picture files: the eager model and its ONNX export agree image for image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from effnet.export import export_onnx
from effnet.predict import OnnxPredictor, predict_files
from helpers.export import tiny_model
from helpers.torch_threads import one_torch_thread as one_torch_thread  # autouse


def test_eager_and_onnx_predictions_match_and_skip_unreadable_files(tmp_path) -> None:
    model = tiny_model(num_classes=3, resolution=48)
    model.class_names = ["cat", "dog", "eel"]
    rng = np.random.default_rng(0)
    for i in range(3):  # odd shapes: the saved preprocessing resizes and crops them
        pixels = rng.integers(0, 255, (60 + 7 * i, 80, 3), np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")

    eager = predict_files(model, [tmp_path], topk=2, progress=False)
    onnx = OnnxPredictor(export_onnx(model, tmp_path / "m.onnx").path).predict_files(
        [tmp_path], topk=2
    )
    assert [p.path for p in onnx.predictions] == [p.path for p in eager.predictions]
    assert len(eager.predictions) == 3 and [s[0] for s in eager.skipped] == [
        str(tmp_path / "broken.png")
    ]
    for a, b in zip(eager.predictions, onnx.predictions):
        assert a.labels == b.labels and set(a.labels) <= {"cat", "dog", "eel"}
        assert a.probs == pytest.approx(b.probs, abs=1e-4)


def test_onnx_input_of_the_wrong_shape_is_refused(tmp_path) -> None:
    model = tiny_model(num_classes=3, resolution=48)
    predictor = OnnxPredictor(export_onnx(model, tmp_path / "m.onnx", dynamic_batch=False).path)
    with pytest.raises(ValueError, match="expects input of shape"):
        predictor.logits(np.zeros((1, 3, 32, 32), np.float32))


def _pictures(folder) -> None:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (50, 64, 3), np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")


def test_predict_applies_the_checkpoint_temperature(tmp_path, capsys) -> None:
    """softmax(logits / T) with the T a fine-tuning run stored: exactly the untempered
    probabilities re-tempered, and the command says which T it applied."""
    import json

    import torch

    from effnet.cli import main
    from effnet.weights import save_model

    model = tiny_model(num_classes=3, resolution=48)
    model.class_names = ["cat", "dog", "eel"]
    run = tmp_path / "run"
    save_model(model, run / "best", extra={"temperature": 2.5})
    _pictures(tmp_path / "pics")
    raw = predict_files(model, [tmp_path / "pics"], topk=3, progress=False)
    assert raw.temperature == 1.0
    assert main(["predict", str(tmp_path / "pics"), "--checkpoint", str(run), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["temperature"] == 2.5
    for plain, tempered in zip(raw.predictions, shown["predictions"]):
        # log p = logits - logsumexp(logits): the constant cancels in softmax(log p / T)
        expected = (torch.tensor(plain.probs).log() / 2.5).softmax(0)
        by_label = {t["label"]: t["prob"] for t in tempered["top"]}
        got = torch.tensor([by_label[label] for label in plain.labels])
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
    assert main(["predict", str(tmp_path / "pics" / "p0.png"), "--checkpoint", str(run)]) == 0
    assert "softmax(logits / 2.500)" in capsys.readouterr().out
    # weights without a stored temperature: the raw softmax, and it says so
    save_model(model, tmp_path / "plain" / "best")
    assert main(["predict", str(tmp_path / "pics" / "p0.png"), "--checkpoint",
                 str(tmp_path / "plain")]) == 0  # fmt: skip
    assert "raw softmax" in capsys.readouterr().out


def test_predict_explain_writes_one_overlay_per_readable_image(tmp_path, capsys) -> None:
    pytest.importorskip("captum")
    pytest.importorskip("matplotlib")
    from effnet.cli import main
    from effnet.weights import save_model

    model = tiny_model(num_classes=3, resolution=48)
    model.class_names = ["cat", "dog", "eel"]
    save_model(model, tmp_path / "run" / "best", extra={"temperature": 1.5})
    _pictures(tmp_path / "pics")
    out = tmp_path / "cams"
    argv = ["predict", str(tmp_path / "pics"), "--checkpoint", str(tmp_path / "run")]
    assert main([*argv, "--explain", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["p0.cam.png", "p1.cam.png", "p2.cam.png"]  # not the broken file
    assert "wrote 3 Grad-CAM overlays" in capsys.readouterr().err
    with Image.open(out / "p0.cam.png") as overlay:
        assert overlay.width > overlay.height  # the model's view beside its map
