"""The memory-efficient training path gives the same numbers as the plain one, with less memory.

``ConvNormAct`` runs BatchNorm + activation as one autograd function in training (the BN output
is recomputed in backward instead of stored). Turning it off (emptying ``_ACT_KINDS``) gives the
plain conv -> BN -> activation path to compare against.
"""

from __future__ import annotations

import copy

import pytest
import torch

import effnet
import effnet.layers as layers
from effnet.bench import peak_tensor_bytes, saved_tensor_bytes
from effnet.model import EfficientNet
from effnet.specs import StageSpec
from helpers.torch_threads import one_torch_thread as one_torch_thread  # autouse


def tiny(activation: str = "silu") -> EfficientNet:
    """Three MBConv blocks with squeeze-excite: every layer kind, a fraction of the cost."""
    spec = effnet.get_spec("efficientnet_b0", activation=activation).replace(
        name="tiny",
        stages=(
            StageSpec("mbconv", 1, 3, 2, 4, 16, 0.25),
            StageSpec("mbconv", 2, 5, 2, 6, 24, 0.25),
        ),
        head_channels=64,
    )
    return EfficientNet(spec, num_classes=10)


def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers, "_ACT_KINDS", {})


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("efficientnet_b0", {}), ("efficientnet_lite0", {"padding": "same"})],
)
def test_fused_training_step_equals_plain(monkeypatch, name: str, overrides: dict) -> None:
    torch.manual_seed(0)
    fused = effnet.create_model(name, num_classes=5, **overrides).train()
    plain = copy.deepcopy(fused)
    x = torch.randn(3, 3, 32, 32)

    torch.manual_seed(1)  # same stochastic-depth masks in both runs
    fused(x).square().sum().backward()
    with monkeypatch.context() as m:
        _plain(m)
        torch.manual_seed(1)
        plain(x).square().sum().backward()

    # float32: the recomputed BN output may differ from BN's own in the last bit
    for (k, p), q in zip(fused.named_parameters(), plain.parameters()):
        scale = q.grad.abs().max().item() + 1e-12
        assert (p.grad - q.grad).abs().max().item() <= 1e-4 * scale, k
    # running statistics and num_batches_tracked move exactly as nn.BatchNorm2d moves them
    a, b = fused.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_fused_path_keeps_less_for_backward(monkeypatch) -> None:
    x = torch.randn(8, 3, 48, 48)
    model = tiny().train()
    params = list(model.parameters())
    _, fused = saved_tensor_bytes(lambda: model(x), exclude=params)
    with monkeypatch.context() as m:
        _plain(m)
        _, plain = saved_tensor_bytes(lambda: model(x), exclude=params)
    assert fused < 0.8 * plain  # one activation-sized tensor fewer per conv + BN + SiLU

    def step(net: torch.nn.Module) -> None:
        net.zero_grad(set_to_none=True)
        net(x).sum().backward()

    _, fused_peak = peak_tensor_bytes(lambda: step(model))
    with monkeypatch.context() as m:
        _plain(m)
        _, plain_peak = peak_tensor_bytes(lambda: step(model))
    assert fused_peak < plain_peak


def test_inference_in_place_ops_match_autograd_path() -> None:
    """Under no_grad the SE rescale and the residual add reuse buffers; results are identical."""
    torch.manual_seed(0)
    model = effnet.create_model("efficientnet_b0", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fast = model(x)
    slow = model(x)  # grad mode on: the out-of-place ops
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=0)


def test_autocast_and_unknown_activations_fall_back() -> None:
    model = tiny("relu6").train()
    model.stem.act = torch.nn.GELU()  # not a fused kind: the plain path handles it
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    assert model.stem.conv.weight.grad is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().sum().backward()
    assert torch.isfinite(model.stem.conv.weight.grad).all()
