"""timm's generic model checks (``tests/test_models.py`` in huggingface/pytorch-image-models:
forward, backward, default_cfg, features, forward_intermediates, torchscript, fx), written again
for effnet and run against every effnet name, plus timm's own data-config resolution.

What differs from timm's suite, and why:

- inputs are 32 px (timm: up to 384) to keep the suite fast on 2 CPU cores; the checks do not
  depend on the size;
- names over 10M parameters (B3 and up, Lite4, V2-B3 and up in each flavour) run forward, backward,
  features, intermediates and fx on the ``meta`` device (shapes and autograd only; timm's CI
  skips L2 altogether); those over 60M skip TorchScript: scripting compiles the same module
  classes as the smaller names of their family, which are scripted and run for real;
- fx and TorchScript of the names over 10M parameters (tracing and scripting take seconds
  each) run in ``make test-slow``; ``make test`` runs them for every smaller name.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from PIL import Image

import effnet
from effnet.data import eval_transform
from effnet.weights import RECORDS

timm = pytest.importorskip("timm")

NAMES = effnet.list_models()
SIZE = 32
BIG = 60_000_000  # no TorchScript above
REAL = 10_000_000  # the meta device above


def params_of(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in effnet.create_model(name).parameters())


PARAMS = {name: params_of(name) for name in NAMES}


def device_for(name: str) -> torch.device:
    return torch.device("meta") if PARAMS[name] > REAL else torch.device("cpu")


# tracing and scripting the big names takes seconds each: those run in `make test-slow`
HEAVY = [pytest.param(n, marks=pytest.mark.slow) if PARAMS[n] > 10_000_000 else n for n in NAMES]


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_default_cfg_features_and_intermediates(name: str) -> None:
    """timm's forward, backward, default_cfg, features and forward_intermediates checks (one
    model of the name, built once, and its features_only backbone)."""
    device = device_for(name)
    with device:
        model = effnet.create_model(name, num_classes=42).train()
        backbone = effnet.create_model(name, features_only=True).eval()
        x = torch.randn(2, 3, SIZE, SIZE)
    # backward: every parameter gets a gradient
    out = model(x)
    out.mean().backward()
    assert out.shape == (2, 42)
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"
    if device.type == "cpu":
        assert not torch.isnan(out).any()
    # features: timm's FeatureInfo reads the model's feature_info; the backbone returns its maps
    model.eval()
    channels = backbone.feature_info.channels()
    assert len(channels) >= 4 and [o.shape[1] for o in backbone(x)] == channels
    info = timm.models.FeatureInfo(model.feature_info, len(model.feature_info))
    final, inter = model.forward_intermediates(x)
    assert len(inter) == len(info.channels())
    for c, r, o in zip(info.channels(), info.reduction(), inter):
        assert o.shape[1] == c and o.shape[-1] <= math.ceil(SIZE / r) + 1
    assert final.shape[1] == model.spec.head_channels  # forward_features' output
    only = model.forward_intermediates(x, indices=2, intermediates_only=True, stop_early=True)
    assert [o.shape for o in only] == [o.shape for o in inter[-2:]]
    # default_cfg: pool size, classifier and first conv names, heads reset as timm's tests do
    cfg = model.pretrained_cfg
    assert model.default_cfg == cfg
    pooled = math.ceil(SIZE / 32)
    assert final.shape[-2:] == (pooled, pooled)
    assert cfg["pool_size"] == (math.ceil(cfg["input_size"][-1] / 32),) * 2
    state = model.state_dict()
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state
    # (forward = forward_head(forward_features): the head alone on the features computed above)
    model.reset_classifier(0)
    assert model.forward_head(final).shape == (2, model.num_features)
    model.reset_classifier(0, "")
    assert model.forward_head(final).shape[-2:] == (pooled, pooled)


@pytest.mark.parametrize("name", HEAVY)
def test_fx_feature_extractor(name: str) -> None:
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    with device_for(name):
        model = effnet.create_model(name).eval()
        x = torch.randn(1, 3, SIZE, SIZE)
    train_nodes, eval_nodes = get_graph_node_names(model)
    fx_model = create_feature_extractor(
        model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]]
    )
    out = fx_model(x)[eval_nodes[-1]]
    assert out.shape == (1, 1000)


@pytest.mark.parametrize("name", HEAVY)
def test_torchscript(name: str) -> None:
    if PARAMS[name] > BIG:
        pytest.skip("over 60M parameters: its module classes are scripted with smaller names")
    model = effnet.create_model(name, scriptable=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in favour of export
        scripted = torch.jit.script(model)
    x = torch.randn(1, 3, SIZE, SIZE)
    torch.testing.assert_close(scripted(x), model(x))


def photo() -> Image.Image:
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(data.astronaut())


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_timm_data_config_gives_the_weights_own_transform(record) -> None:  # type: ignore[no-untyped-def]
    """timm's resolve_model_data_config + create_transform on an effnet model build the same
    tensor as the weights' own transform (torchvision's explicit resizes included: B2's 288 px
    stays 288, not 329)."""
    with torch.device("meta"):
        model = effnet.create_model(record.name)
    config = timm.data.resolve_model_data_config(model)
    theirs = timm.data.create_transform(**config)(photo())
    ours = eval_transform(model)(photo())
    assert theirs.shape == ours.shape
    assert (theirs - ours).abs().max().item() < 1e-5
