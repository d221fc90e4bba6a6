"""optimize(): BatchNorm folded, dropout gone, channels_last; logits equal eager within 1e-4."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from export_helpers import THREE, randomize_bn, small_model
from export_helpers import one_torch_thread as one_torch_thread  # autouse
from torch import nn

import effnet
from effnet.export import ParityError, check_parity, fold_batchnorm, optimize
from effnet.layers import ConvNormAct, DropPath, SamePadConv2d
from effnet.model import EfficientNet
from effnet.specs import StageSpec


@pytest.mark.parametrize(("name", "overrides", "res"), THREE)
def test_optimize_matches_eager(name: str, overrides: dict, res: int) -> None:
    model = small_model(name, res, **overrides)
    before = copy.deepcopy(model.state_dict())
    fast = optimize(model, check_resolution=res)

    # the original is untouched: same keys, same values, BatchNorms still there
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())

    # the copy has no BatchNorm, dropout or stochastic depth, and frozen channels_last weights
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout, DropPath)) for m in fast.modules())
    assert all(m.conv.bias is not None for m in fast.modules() if isinstance(m, ConvNormAct))
    assert not any(p.requires_grad for p in fast.parameters())
    assert fast.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    if overrides.get("padding") == "same":
        assert any(isinstance(m, SamePadConv2d) for m in fast.modules())

    x = torch.randn(3, 3, res, res)
    with torch.inference_mode():
        ref = model(x)
        got = fast(x.to(memory_format=torch.channels_last))
    assert ref.abs().max() > 0.5  # logits large enough for the bound to mean something
    assert (ref - got).abs().max().item() <= 1e-4


def test_fold_is_exact_against_unfused_batchnorm() -> None:
    """The eval fast path and fold_batchnorm both equal conv -> BN -> act computed by hand."""
    torch.manual_seed(0)
    layer = randomize_bn(effnet.create_model("efficientnet_b0")).stem.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        by_hand = layer.act(
            nn.functional.batch_norm(
                layer.conv._conv_forward(x, layer.conv.weight, None),
                layer.bn.running_mean,
                layer.bn.running_var,
                layer.bn.weight,
                layer.bn.bias,
                False,
                0.0,
                layer.bn.eps,
            )
        )
        torch.testing.assert_close(layer(x), by_hand, rtol=1e-5, atol=1e-5)
        folded = fold_batchnorm(copy.deepcopy(layer))
        assert isinstance(folded.bn, nn.Identity)
        torch.testing.assert_close(folded(x), by_hand, rtol=1e-5, atol=1e-5)


def test_eval_fast_path_keeps_conv_hooks_and_training_mode() -> None:
    model = small_model("efficientnet_lite0", 40, padding="same")
    seen: list[tuple[int, ...]] = []
    hook = model.stem.conv.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    with torch.no_grad():
        model(torch.randn(1, 3, 40, 40))
    hook.remove()
    assert seen == [(1, 32, 20, 20)]  # hooks still fire although BN is folded on the fly
    model.train()
    optimize(model, channels_last=False, check_resolution=40)
    assert model.training  # optimize() leaves the caller's mode alone


def test_parity_check_catches_a_wrong_model() -> None:
    model = small_model("efficientnet_b0", 32)
    broken = optimize(model, check=False)
    with torch.no_grad():
        broken.classifier.bias.add_(1.0)
    with pytest.raises(ParityError, match="differs from eager"):
        check_parity(model, broken, resolution=32)


def test_fold_refuses_batchnorm_without_statistics() -> None:
    model = effnet.create_model("efficientnet_b0")
    model.stem.bn = nn.BatchNorm2d(32, track_running_stats=False)
    with pytest.raises(ValueError, match="running statistics"):
        fold_batchnorm(model)


def test_optimize_with_compile_matches_eager() -> None:
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    spec = effnet.get_spec("efficientnet_b0").replace(
        name="tiny",
        stages=(StageSpec("mbconv", 1, 3, 2, 4, 16, 0.25), StageSpec("fused", 1, 3, 2, 4, 24)),
        head_channels=64,
    )
    model = randomize_bn(EfficientNet(spec, num_classes=4)).eval()
    fast = optimize(model, compile=True, check_resolution=32)  # raises on a parity miss
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert (fast(x.to(memory_format=torch.channels_last)) - model(x)).abs().max() <= 1e-4
