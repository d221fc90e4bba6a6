"""The model family: exact parameter counts, shapes, blocks, padding, feature maps, compilers."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import effnet
from effnet.layers import DropPath, SamePadConv2d, make_conv, same_padding
from effnet.model import EfficientNet
from effnet.specs import VARIANTS, StageSpec
from helpers.reference import PARAMS_1000

SMALL = ["efficientnet_b0", "efficientnet_lite0", "efficientnetv2_b0"]


def n_params(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def tiny_spec():
    """A two-stage network for the slower compiler tests."""
    spec = effnet.get_spec("efficientnet_b0")
    return spec.replace(
        name="tiny",
        stages=(StageSpec("mbconv", 1, 3, 2, 4, 16, 0.25), StageSpec("fused", 1, 3, 2, 4, 24)),
        head_channels=64,
    )


TV_NAMES = ["tv_efficientnet_b5", "tv_efficientnet_b6", "tv_efficientnet_b7",
            "tv_efficientnetv2_l", "tv_efficientnetv2_m", "tv_efficientnetv2_s"]  # fmt: skip


def test_every_variant_is_registered_in_every_flavour() -> None:
    """timm's names (PyTorch-style and tf_ ports) for every variant; tv_ for torchvision's
    eps-1e-3 networks."""
    names = effnet.list_models()
    assert sorted(n for n in names if not n.startswith(("tf_", "tv_"))) == sorted(PARAMS_1000)
    assert sorted(n[3:] for n in names if n.startswith("tf_")) == sorted(PARAMS_1000)
    assert sorted(n for n in names if n.startswith("tv_")) == TV_NAMES
    assert effnet.list_models("efficientnet_lite*") == [f"efficientnet_lite{i}" for i in range(5)]


@pytest.mark.parametrize("name", effnet.list_models())
def test_parameter_count_is_exact(name: str) -> None:
    with torch.device("meta"):
        model = effnet.create_model(name)
    assert n_params(model) == PARAMS_1000[name.removeprefix("tf_").removeprefix("tv_")]


def test_seed_fine_tuning_example() -> None:
    """Seed section 7.2: B0 with a 10-class head, then freeze all but the classifier."""
    model = effnet.create_model("efficientnet_b0", num_classes=1000)
    in_features = model.classifier.in_features
    model.classifier = nn.Linear(in_features, 10)
    for name, param in model.named_parameters():
        if not name.startswith("classifier"):
            param.requires_grad = False
    assert n_params(model, trainable=True) == 12_810
    assert n_params(model) == 4_020_358
    for param in model.parameters():
        param.requires_grad = True
    assert n_params(model, trainable=True) == 4_020_358
    assert n_params(effnet.create_model("efficientnet_b0", num_classes=10)) == 4_020_358


@pytest.mark.parametrize("name", sorted(PARAMS_1000))
def test_forward_shapes(name: str) -> None:
    """Small variants run for real at 64 px; the big ones on the meta device at their resolution."""
    big = PARAMS_1000[name] > 25_000_000
    device = torch.device("meta") if big else torch.device("cpu")
    size = VARIANTS[name].resolution if big else 64
    with device:
        model = effnet.create_model(name, num_classes=7).eval()
        x = torch.zeros(2, 3, size, size)
    features = model.forward_features(x)
    assert features.shape == (2, model.num_features, -(size // -32), -(size // -32))
    assert model.forward_head(features).shape == (2, 7)
    assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
    if not big:
        assert torch.isfinite(model(x)).all()


def test_model_api_and_classifier_reset() -> None:
    model = effnet.create_model("efficientnet_b0", num_classes=5, drop_rate=0.4)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.out_features == 5
    assert model.dropout.p == 0.4
    model.reset_classifier(3)
    assert model.classifier.out_features == 3
    model.reset_classifier(0)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1280)
    cfg = model.default_cfg
    assert cfg["input_size"] == (3, 224, 224) and cfg["interpolation"] == "bicubic"
    assert model.preprocess.crop_pct == 0.875 and model.preprocess.resize_size == 256
    assert effnet.create_model("efficientnetv2_s").preprocess.input_size == 384


def test_in_chans_one_and_channels_last() -> None:
    model = effnet.create_model("efficientnet_lite0", in_chans=1, num_classes=3).eval()
    assert model.stem.conv.weight.shape == (32, 1, 3, 3)
    x = torch.randn(2, 1, 64, 64)
    ref = model(x)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_drop_path_rates_ramp_over_blocks() -> None:
    model = effnet.create_model("efficientnet_b0", drop_path_rate=0.2)
    rates = [m.p for m in model.modules() if isinstance(m, DropPath)]
    # 16 blocks; the ones without a residual (stride 2 or channel change) carry no DropPath
    blocks = [b for stage in model.stages for b in stage]
    assert len(blocks) == 16
    expected = [0.2 * i / 16 for i, b in enumerate(blocks) if b.use_residual]
    assert rates == pytest.approx(expected)


def test_stochastic_depth_identity_in_eval_random_in_train() -> None:
    drop = DropPath(0.5)
    x = torch.ones(4000, 2, 3, 3)
    drop.eval()
    assert torch.equal(drop(x), x)
    drop.train()
    y = drop(x)
    kept = y[:, 0, 0, 0]
    assert set(kept.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1/(1-p)
    assert 0.45 < (kept == 0).float().mean().item() < 0.55
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)

    model = effnet.create_model("efficientnet_b0", drop_rate=0.0, drop_path_rate=0.5)
    x = torch.randn(8, 3, 64, 64)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("size", [224, 225, 63, 64, 7])
@pytest.mark.parametrize("kernel", [3, 5])
def test_same_padding_gives_tf_output_sizes(size: int, kernel: int) -> None:
    conv = make_conv(4, 4, kernel, stride=2, padding="same")
    assert isinstance(conv, SamePadConv2d)
    y = conv(torch.randn(1, 4, size, size + 1))
    assert y.shape[-2:] == (-(size // -2), -((size + 1) // -2))  # TF: ceil(size / stride)
    # TF puts the odd extra pixel at the bottom/right: check against an explicit F.pad
    top, bottom = same_padding(size, kernel, 2)
    left, right = same_padding(size + 1, kernel, 2)
    assert bottom - top in (0, 1) and right - left in (0, 1)
    x = torch.randn(1, 4, size, size + 1)
    ref = nn.functional.conv2d(
        nn.functional.pad(x, [left, right, top, bottom]), conv.weight, None, 2
    )
    torch.testing.assert_close(conv(x), ref)


def test_same_padding_values() -> None:
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(224, 5, 2) == (1, 2)
    assert same_padding(225, 3, 2) == (1, 1)
    assert same_padding(225, 5, 2) == (2, 2)
    assert same_padding(112, 3, 1) == (1, 1)  # stride 1 odd kernel: symmetric


def test_same_padded_model_sizes() -> None:
    model = effnet.create_model("tf_efficientnet_lite0").eval()
    feats = effnet.create_model("tf_efficientnet_lite0", features_only=True).eval()
    for size in (225, 224, 97):
        x = torch.randn(1, 3, size, size)
        expected = size
        sizes = []
        for _ in range(5):
            expected = -(expected // -2)
            sizes.append(expected)
        assert [f.shape[-1] for f in feats(x)] == sizes
        assert model.forward_features(x).shape[-1] == sizes[-1]


@pytest.mark.parametrize(
    ("name", "channels"),
    [
        ("efficientnet_b0", [16, 24, 40, 112, 320]),
        ("efficientnet_b3", [24, 32, 48, 136, 384]),
        ("efficientnetv2_s", [24, 48, 64, 160, 256]),
    ],
)
def test_feature_maps(name: str, channels: list[int]) -> None:
    model = effnet.create_model(name, features_only=True).eval()
    assert model.channels == channels
    assert model.reductions == [2, 4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 64)
    outs = model(x)
    assert [o.shape[1] for o in outs] == channels
    assert [64 // o.shape[-1] for o in outs] == [2, 4, 8, 16, 32]
    sub = effnet.create_model(name, features_only=True, out_indices=(1, 3)).eval()
    assert sub.channels == [channels[1], channels[3]]
    # the backbone shares parameter names with the classifier, so classifier weights load into it
    full = effnet.create_model(name)
    missing, unexpected = sub.load_state_dict(full.state_dict(), strict=False)
    assert not missing and all(k.startswith(("stages.", "head.", "classifier")) for k in unexpected)
    with pytest.raises(ValueError, match="out_indices"):
        effnet.create_model(name, features_only=True, out_indices=(5,))


def test_scripted_and_exported_equal_eager() -> None:
    model = effnet.create_model("tf_efficientnet_lite0", num_classes=10).eval()
    x = torch.randn(2, 3, 65, 64)
    ref = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in favour of export
        scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), ref)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), ref)
    v2 = effnet.create_model("efficientnetv2_b0", num_classes=10).eval()
    y = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(torch.export.export(v2, (y,)).module()(y), v2(y))


def test_torch_compile_matches_eager() -> None:
    model = EfficientNet(tiny_spec(), num_classes=4).eval()
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


def test_compound_coefficient_models() -> None:
    m = effnet.create_model("efficientnet", phi=2.5)
    spec = m.spec
    assert spec.resolution == 320  # 224 * 1.15^2.5 = 317.8 -> nearest multiple of 8
    assert spec.width == pytest.approx(1.1**2.5)
    assert spec.depth == pytest.approx(1.2**2.5)
    assert spec.dropout == 0.3  # interpolated between B2 and B3, both 0.3
    custom = effnet.get_spec("efficientnet", phi=1, alpha=1.4, beta=1.05, gamma=1.1)
    assert custom.depth == pytest.approx(1.4) and custom.resolution == 248
    lite = effnet.get_spec("efficientnet", phi=1, base="efficientnet_lite")
    assert lite.activation == "relu6" and lite.stem_channels == 32
    # phi = 0 of the formula is B0 itself
    assert n_params(effnet.create_model("efficientnet", phi=0)) == PARAMS_1000["efficientnet_b0"]


def test_clear_errors() -> None:
    with pytest.raises(KeyError, match=r"unknown model 'efficientnet_b9'.*efficientnet_b"):
        effnet.create_model("efficientnet_b9")
    with pytest.raises(ValueError, match="fixed variant"):
        effnet.create_model("efficientnet_b0", phi=1)
    with pytest.raises(TypeError, match="unknown option"):
        effnet.create_model("efficientnet_b0", paddding="same")
    with pytest.raises(ValueError, match="padding must be one of"):
        effnet.create_model("efficientnet_b0", padding="valid")
    with pytest.raises(ValueError, match="already registered"):
        from effnet.registry import register

        register("efficientnet_b0", lambda: effnet.get_spec("efficientnet_b0"))
