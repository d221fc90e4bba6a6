"""The training loop's depthwise weight gradient: the same gradients as torch's, taken only where
the kernel is larger than the map, and nothing of the model changed afterwards."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import effnet
from effnet.layers import SamePadConv2d
from effnet.train.depthwise import fast_depthwise_grads, routed


def _grads(conv: nn.Conv2d, x: torch.Tensor, grad: torch.Tensor, fast: bool) -> tuple:
    x = x.detach().clone().requires_grad_(True)
    conv.weight.grad = None
    with fast_depthwise_grads(conv, enabled=fast):
        out = conv(x)
    took = "SmallMapDepthwise" in type(out.grad_fn).__name__
    out.backward(grad)
    return took, out.detach(), x.grad, conv.weight.grad.clone()


CASES = [  # (conv, map size): every kernel larger than its map, as at 64-128 px
    (nn.Conv2d(24, 24, 5, 1, 2, groups=24, bias=False), 4),  # Lite0/B0's last stage at 128 px
    (nn.Conv2d(24, 24, 3, 1, 1, groups=24, bias=False), 2),
    (nn.Conv2d(24, 24, 3, 1, 1, groups=24, bias=False), 1),
    (nn.Conv2d(24, 24, 5, 2, 2, groups=24, bias=False), 4),
    (SamePadConv2d(24, 24, 5, 2, 0, groups=24, bias=False), 3),  # tf_ "SAME", odd map
    (nn.Conv2d(24, 24, (5, 3), 1, (2, 1), groups=24, bias=False), 4),
]


@pytest.mark.parametrize("conv,size", CASES, ids=lambda v: str(v) if isinstance(v, int) else "")
@pytest.mark.parametrize("channels_last", [True, False])
def test_the_gradients_are_torchs(conv: nn.Conv2d, size: int, channels_last: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
    x = torch.randn(5, 24, size, size + 1, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(conv(x).shape, generator=gen)
    took_ref, out_ref, gx_ref, gw_ref = _grads(conv, x, grad, fast=False)
    took, out, gx, gw = _grads(conv, x, grad, fast=True)
    assert took and not took_ref
    assert torch.equal(out, out_ref)  # the forward is torch's own
    assert torch.equal(gx, gx_ref)  # and so is the input gradient
    torch.testing.assert_close(gw, gw_ref, rtol=1e-5, atol=1e-5)  # summed in another order


def test_only_kernels_larger_than_the_map_on_a_trained_depthwise_conv_are_routed() -> None:
    dw = nn.Conv2d(8, 8, 5, 1, 2, groups=8, bias=False)
    small, large = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 5, 5)
    with fast_depthwise_grads(dw):
        assert routed(dw, small) and not routed(dw, large)  # 5x5 kernel: 4x4 map yes, 5x5 no
        with torch.no_grad():
            assert not routed(dw, small)  # inference keeps torch's path
        dw.weight.requires_grad_(False)
        assert not routed(dw, small)  # a frozen weight has no gradient to compute
        dw.weight.requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not routed(dw, small)
    for other in (
        nn.Conv2d(8, 16, 5, 1, 2, groups=8, bias=False),  # grouped, not depthwise
        nn.Conv2d(8, 8, 5, 1, 2, groups=8, bias=True),
        nn.Conv2d(8, 8, 5, 1, 4, dilation=2, groups=8, bias=False),
        nn.Conv2d(8, 8, 5, 1, 2, groups=8, bias=False, padding_mode="reflect"),
    ):
        assert not routed(other, small)


def test_a_training_step_matches_and_the_model_is_left_as_it_was() -> None:
    torch.manual_seed(0)
    model = effnet.create_model("tf_efficientnet_lite0", num_classes=5).train()
    reference = effnet.create_model("tf_efficientnet_lite0", num_classes=5).train()
    reference.load_state_dict(model.state_dict())
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    calls: list[bool] = []  # per depthwise conv: whether it took the shifted-sum gradient
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            m.register_forward_hook(lambda mod, args, _: calls.append(routed(mod, args[0])))
    with fast_depthwise_grads(model) as n:
        assert n == 16  # every depthwise conv of Lite0 may take it (decided per call)
        torch.manual_seed(1)  # the same dropout masks for both
        F.cross_entropy(model(x), y).backward()
    torch.manual_seed(1)
    F.cross_entropy(reference(x), y).backward()
    # hooks still fire; at 64 px the last stages' 2x2 and 4x4 maps take the new gradient
    assert len(calls) == 16 and 4 <= sum(calls) < 16
    grads = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-6, msg=name)
    assert not any("forward" in vars(m) for m in model.modules())  # its own forward is back
    assert model.state_dict().keys() == reference.state_dict().keys()
