"""Converted weights give the peers' logits: torchvision, timm (incl. TF ports),
efficientnet_pytorch and its Lite port, for every variant each library has; the way back is
exact."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import effnet
from effnet.weights.convert import from_effnet, to_effnet

SIZE = 48


# Converting and running the biggest variants (66M-480M parameters) takes 5-10 s each: their key
# maps are the smaller variants' with more blocks; they run in `make test-slow`.
def slow_if_big(*values: str) -> object:
    """The B6-B8, L2 and V2-M/L/XL names run in `make test-slow`."""
    big = re.search(r"(_b[678]|_l2|v2_?(m|l|xl))$", values[0]) is not None
    return pytest.param(*values, marks=pytest.mark.slow) if big else pytest.param(*values)


def randomise(model: nn.Module) -> nn.Module:
    """Fast random weights and BatchNorm statistics, so eval-mode BN is not the identity."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                tensor.zero_()
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5, generator=gen)
            elif tensor.dim() == 1:  # BN scale/shift, running means, biases
                tensor.uniform_(-0.2, 0.2, generator=gen) if "bias" in name or "mean" in name else (
                    tensor.uniform_(0.8, 1.2, generator=gen)
                )
            else:
                tensor.normal_(0.0, tensor[0].numel() ** -0.5, generator=gen)  # LeCun: unit scale
    return model.eval()


def materialise(factory) -> nn.Module:
    """Build a foreign model on the meta device and give it real (random) storage: much faster
    than the peers' own initialisers for the 100M+ parameter variants."""
    with torch.device("meta"):
        model = factory()
    return randomise(model.to_empty(device="cpu"))


def check_parity(ours: str, foreign: nn.Module, fmt: str, size: int = SIZE) -> None:
    """``ours`` is the effnet name of the peer's network: the name alone sets padding and eps."""
    spec = effnet.get_spec(ours)
    state = to_effnet(foreign.state_dict(), spec, fmt)
    with torch.device("meta"):  # no initialiser run: every tensor comes from the checkpoint
        model = effnet.create_model(ours)
    model.load_state_dict(state, assign=True)
    model.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = foreign(x)
        got = model(x)
    assert expected.abs().max() > 1e-3  # a non-degenerate network
    assert (got - expected).abs().max().item() <= 1e-5
    back = from_effnet(model.state_dict(), spec, fmt)
    original = foreign.state_dict()
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], original[k]) for k in original)
    foreign.load_state_dict(back)  # the peer itself accepts what we write (strict)


# (our name, torchvision's): its B0-B4 are PyTorch-style (eps 1e-5), its B5-B7 and V2 use eps
# 1e-3 with symmetric padding, which effnet calls tv_*.
TORCHVISION = (
    [(f"efficientnet_b{i}", f"efficientnet_b{i}") for i in range(5)]
    + [(f"tv_efficientnet_b{i}", f"efficientnet_b{i}") for i in range(5, 8)]
    + [(f"tv_efficientnetv2_{s}", f"efficientnet_v2_{s}") for s in "sml"]
)


@pytest.mark.parametrize(("ours", "theirs"), [slow_if_big(o, t) for o, t in TORCHVISION])
def test_torchvision_parity(ours: str, theirs: str) -> None:
    import torchvision

    foreign = materialise(getattr(torchvision.models, theirs))
    assert foreign.features[0][1].eps == effnet.get_spec(ours).bn_eps  # the name says which
    check_parity(ours, foreign, "torchvision")


# timm's names are effnet's names: every EfficientNet variant timm has, PyTorch-style (eps 1e-5,
# symmetric padding) and its TensorFlow ports (tf_*: eps 1e-3, SAME padding).
TIMM = (
    [f"efficientnet_b{i}" for i in range(9)]
    + ["efficientnet_l2"]
    + [f"efficientnet_lite{i}" for i in range(5)]
    + [f"tf_efficientnet_b{i}" for i in range(9)]
    + ["tf_efficientnet_l2"]
    + [f"tf_efficientnet_lite{i}" for i in range(5)]
    + [f"efficientnetv2_{s}" for s in ("s", "m", "l", "xl")]
    + [f"tf_efficientnetv2_{s}" for s in ("s", "m", "l", "xl")]
    + [f"tf_efficientnetv2_b{i}" for i in range(4)]
)


@pytest.mark.parametrize("name", [slow_if_big(n) for n in TIMM])
def test_timm_parity(name: str) -> None:
    timm = pytest.importorskip("timm")
    foreign = materialise(lambda: timm.create_model(name))
    # an odd size exercises SAME padding's asymmetric extra pixel
    check_parity(name, foreign, "timm", size=SIZE + 1 if name.startswith("tf_") else SIZE)


def use_fused_silu(model: nn.Module) -> None:
    """efficientnet_pytorch computes swish as x * sigmoid(x); torch's fused SiLU is the same
    function rounded differently, which alone moves B6's logits by ~1.5e-5. Swapping the module
    (the weights are untouched) keeps this a test of the key map, not of float rounding. Its Lite
    port uses ReLU6, which has no such difference."""
    for module in model.modules():
        if type(getattr(module, "_swish", None)).__name__ in ("Swish", "MemoryEfficientSwish"):
            module._swish = nn.SiLU()


@pytest.mark.parametrize(
    "i", [pytest.param(i, marks=pytest.mark.slow) if i >= 6 else i for i in range(9)]
)
def test_efficientnet_pytorch_parity(i: int) -> None:
    from efficientnet_pytorch import EfficientNet

    # its SAME padding is computed once for `image_size`; we pad for whatever size arrives
    foreign = materialise(lambda: EfficientNet.from_name(f"efficientnet-b{i}", image_size=SIZE))
    use_fused_silu(foreign)
    check_parity(f"tf_efficientnet_b{i}", foreign, "lukemelas")


@pytest.mark.parametrize("i", range(5))
def test_efficientnet_lite_port_parity(i: int) -> None:
    from efficientnet_lite_pytorch import EfficientNet, get_model_params

    # its from_name() cannot pass image_size through, so build from its params directly
    blocks, params = get_model_params(f"efficientnet-lite{i}", {"image_size": SIZE})
    foreign = materialise(lambda: EfficientNet(blocks, params))
    check_parity(f"tf_efficientnet_lite{i}", foreign, "lukemelas")
