"""Files other libraries already downloaded are used offline: torchvision's (torch.hub's
checkpoint folder) and timm's (Hugging Face's shared cache); ``hf-hub:`` ids; torchvision's
weights idiom; ``torch.hub.load`` from a checkout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import effnet
from effnet.weights import find_record
from helpers.models import randomise_batchnorm

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline, with empty effnet, torch.hub and Hugging Face caches under ``tmp_path``."""
    pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("EFFNET_OFFLINE", "1")
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path / "effnet"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def put_in_hf_cache(root: Path, repo: str, files: dict[str, bytes]) -> None:
    """The layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/REV/FILE}."""
    folder = root / "hf" / ("models--" + repo.replace("/", "--"))
    revision = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)


def safetensors_bytes(state: dict[str, torch.Tensor], tmp: Path) -> bytes:
    path = tmp / "blob.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path.read_bytes()


def logits(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(1, 3, 65, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(x)


def test_a_torchvision_file_in_the_torch_hub_cache_loads_offline(offline: Path) -> None:
    import torchvision

    record = find_record("efficientnet_b0", "IMAGENET1K_V1")
    theirs = torchvision.models.efficientnet_b0()
    slot = offline / "torch" / "hub" / "checkpoints" / record.filename
    slot.parent.mkdir(parents=True)
    torch.save(theirs.state_dict(), slot)
    ours = effnet.create_model("efficientnet_b0", pretrained="IMAGENET1K_V1")
    assert ours.pretrained_source == "efficientnet_b0.tv_in1k"
    torch.testing.assert_close(logits(ours), logits(theirs), atol=1e-5, rtol=1e-5)
    assert not (offline / "effnet").exists()  # no second copy
    # torchvision's idiom finds the same file
    weights = effnet.get_model_weights("efficientnet_b0").IMAGENET1K_V1
    assert weights.url == record.url and weights.meta["num_params"] == 5_288_548
    assert weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] == 77.692
    again = effnet.get_model("efficientnet_b0", weights="DEFAULT")
    torch.testing.assert_close(logits(again), logits(theirs), atol=1e-5, rtol=1e-5)


def test_a_timm_file_in_the_hugging_face_cache_loads_offline(offline: Path) -> None:
    timm = pytest.importorskip("timm")
    theirs = randomise_batchnorm(timm.create_model("tf_efficientnet_lite0"))
    blob = safetensors_bytes(theirs.state_dict(), offline)
    put_in_hf_cache(offline, "timm/tf_efficientnet_lite0.in1k", {"model.safetensors": blob})
    ours = effnet.create_model("tf_efficientnet_lite0.in1k", pretrained=True)
    torch.testing.assert_close(logits(ours), logits(theirs), atol=1e-5, rtol=1e-5)
    hub = effnet.create_model("hf-hub:timm/tf_efficientnet_lite0.in1k", pretrained=True)
    torch.testing.assert_close(logits(hub), logits(theirs), atol=1e-5, rtol=1e-5)
    assert hub.pretrained_cfg["hf_hub_id"] == "timm/tf_efficientnet_lite0.in1k"


def test_any_hub_repository_with_a_config_loads_offline(offline: Path) -> None:
    """A repository in timm's format (config.json naming the architecture, model.safetensors),
    as a fine-tuned model pushed to the Hub looks."""
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("efficientnet_b0", num_classes=3)
    config = {
        "architecture": "efficientnet_b0",
        "num_classes": 3,
        "label_names": ["cat", "dog", "fox"],
        "pretrained_cfg": {"input_size": [3, 160, 160], "crop_pct": 1.0, "mean": [0.5] * 3,
                           "std": [0.5] * 3, "interpolation": "bilinear"},
    }  # fmt: skip
    put_in_hf_cache(offline, "someone/pets-b0", {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": safetensors_bytes(theirs.state_dict(), offline),
    })  # fmt: skip
    ours = effnet.create_model("hf-hub:someone/pets-b0", pretrained=True)
    assert ours.class_names == ["cat", "dog", "fox"]
    assert ours.preprocess.input_size == 160 and ours.preprocess.mean == (0.5, 0.5, 0.5)
    torch.testing.assert_close(logits(ours), logits(theirs), atol=1e-5, rtol=1e-5)
    with pytest.raises(OSError, match="not in the Hugging Face cache"):
        effnet.create_model("hf-hub:someone/not-there", pretrained=True)


def test_torch_hub_load_from_a_checkout() -> None:
    model = torch.hub.load(str(ROOT), "tf_efficientnet_lite0", source="local", num_classes=4)
    assert isinstance(model, effnet.model.EfficientNet) and model.num_classes == 4
    b0 = torch.hub.load(str(ROOT), "efficientnet_b0", source="local")
    assert b0.spec.name == "efficientnet_b0" and b0.num_classes == 1000


def test_listing_pretrained_names_as_timm_does() -> None:
    tagged = effnet.list_models("tf_efficientnetv2_s*", pretrained=True)
    assert tagged == ["tf_efficientnetv2_s.in1k", "tf_efficientnetv2_s.in21k_ft_in1k"]
    assert effnet.list_pretrained("efficientnet_b0*") == [
        "efficientnet_b0.ra4_e3600_r224_in1k", "efficientnet_b0.ra_in1k", "efficientnet_b0.tv_in1k",
    ]  # fmt: skip
    assert "efficientnet_lite1" not in effnet.list_models(pretrained=True, include_tags=False)
    assert effnet.is_model("efficientnet_b0.ra_in1k") and not effnet.is_model("resnet50")
