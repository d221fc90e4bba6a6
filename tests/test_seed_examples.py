"""The seed document's timm snippets (sections 7.1, 7.2) run with ``effnet`` in place of ``timm``,
with the names the seed recommends (efficientnet_b0, tf_efficientnetv2_s, tf_efficientnetv2_m).

``pretrained=True`` downloads the default weights (timm's, as in timm) on a networked machine.
Offline, the snippet first fails with an error that names the file to fetch; the test then puts a
file in that record's cache slot (random weights in the publisher's format), so the snippet runs
the real path: record -> cache -> key map -> model.
"""

from __future__ import annotations

import contextlib
import io
import sys
import types
from pathlib import Path

import pytest
import torch
import torchvision

import effnet
from effnet.weights import WeightRecord, default_record, find_record, from_effnet

SNIPPET_7_1 = """
import torch
import timm

def main():
    # Load pretrained EfficientNet-B0 (downloads weights on first run)
    model = timm.create_model("efficientnet_b0", pretrained=True)
    model.eval()

    # Dummy batch: 1 RGB image at 224x224
    x = torch.randn(1, 3, 224, 224)

    with torch.inference_mode():
        logits = model(x)
        probs = logits.softmax(dim=-1)

    print("Output logits shape:", logits.shape)   # (1, 1000) for ImageNet
    print("Top-5 prob sum:", probs.topk(5, dim=-1).values.sum().item())

if __name__ == "__main__":
    main()
"""

SNIPPET_7_2 = """
import torch
import torch.nn as nn
import timm
from torch.utils.data import DataLoader

def make_model(num_classes: int, model_name: str = "efficientnet_b0") -> nn.Module:
    model = timm.create_model(model_name, pretrained=True)
    in_features = model.classifier.in_features
    model.classifier = nn.Linear(in_features, num_classes)
    return model


def freeze_backbone(model: nn.Module) -> None:
    for name, param in model.named_parameters():
        if not name.startswith("classifier"):
            param.requires_grad = False


def unfreeze_all(model: nn.Module) -> None:
    for param in model.parameters():
        param.requires_grad = True


def count_params(model: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


if __name__ == "__main__":
    NUM_CLASSES = 10

    model = make_model(num_classes=NUM_CLASSES)
    freeze_backbone(model)

    trainable, total = count_params(model)
    print(f"Phase 1 (head only): {trainable:,} trainable / {total:,} total parameters")

    optimizer = torch.optim.AdamW(
        filter(lambda p: p.requires_grad, model.parameters()),
        lr=1e-3
    )

    unfreeze_all(model)
    trainable, _ = count_params(model)
    print(f"Phase 2 (full model): {trainable:,} trainable parameters")

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
"""


def put_in_cache(cache: Path, record: WeightRecord) -> Path:
    """Random weights in the record's publisher format, where ``fetch`` looks for the file."""
    slot = cache / record.model / record.filename
    slot.parent.mkdir(parents=True, exist_ok=True)
    if record.source == "torchvision":
        builder = record.origin.split("_Weights")[0].lower()  # EfficientNet_B0_Weights.X
        state = torchvision.models.get_model(builder).state_dict()
    else:
        model = effnet.create_model(record.model)
        state = from_effnet(model.state_dict(), model.spec, record.format)
    torch.save(state, slot)
    return slot


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path))
    monkeypatch.setenv("EFFNET_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "timm", effnet)  # `import timm` now means effnet
    return tmp_path


@pytest.fixture
def b0_in_cache(offline_cache: Path) -> Path:
    record = default_record("efficientnet_b0")
    assert record.name == "efficientnet_b0.ra_in1k"  # timm's default, as in timm
    return put_in_cache(offline_cache, record)


def run_snippet(code: str) -> str:
    out = io.StringIO()
    module = types.ModuleType("__main__")
    with contextlib.redirect_stdout(out):
        exec(compile(code, "seed-snippet", "exec"), module.__dict__)
    return out.getvalue()


def test_seed_7_1_inference(b0_in_cache: Path) -> None:
    lines = run_snippet(SNIPPET_7_1).splitlines()
    assert lines[0] == "Output logits shape: torch.Size([1, 1000])"
    prob_sum = float(lines[1].split(":")[1])
    assert 0.0 < prob_sum <= 1.0


def test_seed_7_2_fine_tuning_skeleton(b0_in_cache: Path) -> None:
    output = run_snippet(SNIPPET_7_2)
    assert output.splitlines() == [
        "Phase 1 (head only): 12,810 trainable / 4,020,358 total parameters",
        "Phase 2 (full model): 4,020,358 trainable parameters",
    ]


@pytest.mark.parametrize("name", ["tf_efficientnetv2_s", "tf_efficientnetv2_m"])
def test_seed_7_1_with_the_recommended_v2_names(name: str, offline_cache: Path) -> None:
    """Section 8 recommends timm with tf_efficientnetv2_s or _m: the 7.1 snippet runs with them."""
    code = SNIPPET_7_1.replace('"efficientnet_b0"', f'"{name}"')
    record = default_record(name)
    with pytest.raises(OSError, match=rf"Download {record.url} and place the file at"):
        run_snippet(code)  # offline with an empty cache: the error names the file to fetch
    put_in_cache(offline_cache, record)
    lines = run_snippet(code).splitlines()
    assert lines[0] == "Output logits shape: torch.Size([1, 1000])"
    assert 0.0 < float(lines[1].split(":")[1]) <= 1.0


def test_pretrained_b0_tv_tag_uses_torchvision_numerics(offline_cache: Path) -> None:
    """torchvision's B0 file is efficientnet_b0's tv_in1k weights: eps 1e-5, symmetric padding,
    the same network as timm's, and the same logits as torchvision's own model."""
    slot = put_in_cache(offline_cache, find_record("efficientnet_b0", "tv_in1k"))
    theirs = torchvision.models.efficientnet_b0()
    theirs.load_state_dict(torch.load(slot, weights_only=True))
    ours = effnet.create_model("efficientnet_b0.tv_in1k", pretrained=True)
    assert ours.spec == effnet.create_model("efficientnet_b0").spec
    assert ours.spec.bn_eps == 1e-5 and ours.preprocess.resize_size == 256
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), atol=1e-5, rtol=1e-5)
