"""Class-activation maps: on the tensor the model classified, aligned with the picture shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from effnet.data import eval_transform
from effnet.host import torch_threads
from effnet.model import EfficientNet
from effnet.report.cam import explain_files, explain_images, grad_cam, overlay
from helpers.report import SIZE, blob_picture, tiny_model, train_blob_detector
from helpers.torch_threads import one_torch_thread as one_torch_thread  # autouse

pytest.importorskip("captum")


@pytest.fixture(scope="module")
def detector() -> EfficientNet:
    with torch_threads(1):  # two threads contending for 2 shared cores: 10x slower
        return train_blob_detector()


def _peak(heatmap: np.ndarray) -> tuple[int, int]:
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return int(col), int(row)


def test_overlay_peak_lies_inside_the_object(detector: EfficientNet) -> None:
    rng = np.random.default_rng(123)
    pictures, blobs = zip(*[blob_picture(rng, True) for _ in range(16)])
    explained = explain_images(detector, list(pictures), [1] * 16)
    inside = [blob.contains(*_peak(ex.heatmap)) for ex, blob in zip(explained, blobs)]
    assert sum(inside) >= 15, inside
    # the same maps read mirrored (what a flipped or transposed overlay would show) mostly
    # miss: the check above can fail
    mirrored = [blob.contains(*_peak(ex.heatmap[::-1].T)) for ex, blob in zip(explained, blobs)]
    assert sum(mirrored) <= 8, mirrored
    # and the model does see the objects
    assert all(ex.probs[1] > 0.5 for ex in explained)


def test_picture_is_the_classified_tensor(detector: EfficientNet) -> None:
    rng = np.random.default_rng(5)
    picture, _ = blob_picture(rng, True)
    (ex,) = explain_images(detector, [picture])
    x = eval_transform(detector)(picture)
    with torch.no_grad():
        probs = detector(x[None]).softmax(1)[0]
    assert ex.probs == pytest.approx(probs.tolist(), abs=1e-5)
    assert ex.target == int(probs.argmax())
    # the picture under the overlay is the model's input with the normalisation undone
    mean = torch.tensor(detector.preprocess.mean).reshape(3, 1, 1)
    std = torch.tensor(detector.preprocess.std).reshape(3, 1, 1)
    expected = ((x * std + mean).clamp(0, 1) * 255).permute(1, 2, 0).numpy()
    assert ex.image.shape == (SIZE, SIZE, 3) and ex.heatmap.shape == (SIZE, SIZE)
    assert np.abs(ex.image.astype(np.float64) - expected).max() <= 0.51


def test_grad_cam_equals_cam_from_the_features() -> None:
    """For pool -> linear, Grad-CAM on the last feature map is the classic CAM: the classifier
    weights applied to the features. Computed here without any hook, this catches hooks that
    see another tensor than the one the model used (in-place ops, folded layers)."""
    model = tiny_model(num_classes=3).eval()
    x = torch.randn(4, 3, SIZE, SIZE)
    targets = [0, 1, 2, 1]
    maps, logits = grad_cam(model, x, targets)
    with torch.no_grad():
        features = model.forward_features(x)  # (N, C, 8, 8)
        weights = model.classifier.weight[targets]  # (N, C)
        cam = F.relu(torch.einsum("nc,nchw->nhw", weights, features))[:, None]
        cam = F.interpolate(cam, size=(SIZE, SIZE), mode="bilinear")[:, 0]
        low = cam.flatten(1).amin(1).reshape(-1, 1, 1)
        high = cam.flatten(1).amax(1).reshape(-1, 1, 1)
        expected = (cam - low) / (high - low)
        assert torch.allclose(logits, model(x), atol=1e-5)
    assert torch.allclose(maps, expected, atol=1e-4)


def test_grad_cam_leaves_the_model_as_it_found_it() -> None:
    model = tiny_model()
    for p in model.parameters():
        p.requires_grad_(False)  # a frozen model still gets maps
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():  # callers often are inside inference code
        maps, _ = grad_cam(model, torch.randn(2, 3, SIZE, SIZE))
    assert maps.shape == (2, SIZE, SIZE) and model.training
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm statistics untouched
    assert all(p.grad is None for p in model.parameters())


def test_overlay_keeps_cold_pixels() -> None:
    picture = np.full((4, 4, 3), 100, dtype=np.uint8)
    heat = np.zeros((4, 4), dtype=np.float32)
    heat[0, 0] = 1.0
    out = overlay(picture, heat)
    assert out.dtype == np.uint8 and out.shape == picture.shape
    assert (out[1:, 1:] == 100).all() and not (out[0, 0] == 100).all()


def test_explain_files_writes_one_overlay_per_image(tmp_path: Path, detector: EfficientNet) -> None:
    rng = np.random.default_rng(9)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        blob_picture(rng, True)[0].save(tmp_path / folder / "cell.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    detector.class_names = ["empty", "blob"]
    out = explain_files(detector, [tmp_path / "a", tmp_path / "b"], tmp_path / "cams")
    assert sorted(p.name for p in out.files.values()) == ["cell-2.cam.png", "cell.cam.png"]
    assert [Path(p).name for p, _ in out.skipped] == ["broken.png"]
    with Image.open(out.files[str(tmp_path / "a" / "cell.png")]) as img:
        assert img.width > 2 * SIZE and img.height > SIZE
