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
