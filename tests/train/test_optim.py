"""Optimizer parameter groups: layer-wise learning-rate decay from ``group_matcher``, checked
against timm's own ``param_groups_layer_decay`` on effnet models."""

from __future__ import annotations

import pytest
import torch

import effnet
from effnet.train.optim import build_optimizer, layer_decay_scales, layer_ids, param_groups


def by_param(groups: list[dict]) -> dict[int, tuple[float, float]]:
    """id(parameter) -> (lr scale, weight decay)."""
    return {id(p): (g.get("lr_scale", 1.0), g["weight_decay"]) for g in groups for p in g["params"]}


@pytest.mark.parametrize("name", ["efficientnet_b0", "tf_efficientnetv2_b0", "efficientnet_lite0"])
def test_layer_decay_matches_timms_param_groups(name: str) -> None:
    pytest.importorskip("timm")
    from timm.optim._param_groups import param_groups_layer_decay

    model = effnet.create_model(name, num_classes=5)
    theirs = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.8)
    scales = layer_decay_scales(model, 0.8)
    ours = param_groups(model.named_parameters(), 0.05, scales)
    expected = by_param(theirs)
    got = by_param(ours)
    assert got.keys() == expected.keys()
    for key, (scale, decay) in expected.items():
        assert got[key][0] == pytest.approx(scale) and got[key][1] == decay


def test_layers_run_from_the_stem_to_the_classifier() -> None:
    model = effnet.create_model("efficientnet_b0", num_classes=3)
    ids = layer_ids(model)
    blocks = sum(len(stage) for stage in model.stages)
    assert ids["stem.conv.weight"] == 0
    assert ids["stages.0.0.depthwise.conv.weight"] == 1
    assert ids["classifier.weight"] == blocks + 1  # the last layer: full learning rate
    assert ids["head.conv.weight"] == blocks  # the conv head trains with the last block (timm)
    coarse = layer_ids(model, coarse=True)
    assert coarse["classifier.weight"] == len(model.stages) + 1


def test_the_optimizer_gets_the_scaled_rates_and_the_schedule_keeps_the_ratios() -> None:
    model = effnet.create_model("efficientnet_b0", num_classes=3)
    scales = layer_decay_scales(model, 0.5)
    opt = build_optimizer(model.named_parameters(), "adamw", 1e-3, 0.05, lr_scale=scales)
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs[-1] == pytest.approx(1e-3) and lrs[0] == pytest.approx(1e-3 * 0.5 ** (len(lrs) - 1))
    plain = build_optimizer(model.named_parameters(), "adamw", 1e-3, 0.05)
    assert [g["weight_decay"] for g in plain.param_groups] == [0.05, 0.0]
    assert all(g["lr"] == 1e-3 for g in plain.param_groups)
    with pytest.raises(ValueError, match="layer_decay"):
        layer_decay_scales(model, 0.0)


def test_a_step_with_layer_decay_moves_the_stem_less_than_the_head() -> None:
    model = effnet.create_model("efficientnet_b0", num_classes=3)
    opt = build_optimizer(
        model.named_parameters(), "sgd", 0.1, 0.0, lr_scale=layer_decay_scales(model, 0.5)
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    torch.nn.functional.cross_entropy(
        model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 1])
    ).backward()
    for p in model.parameters():
        p.grad = torch.ones_like(p)  # the same gradient everywhere: the step is the rate
    opt.step()
    stem = (model.state_dict()["stem.conv.weight"] - before["stem.conv.weight"]).abs().max()
    head = (model.state_dict()["classifier.weight"] - before["classifier.weight"]).abs().max()
    assert stem < head * 1e-3


def test_adamw_takes_the_fused_kernel_on_cpu_with_the_same_update() -> None:
    from effnet.train.optim import adamw

    torch.manual_seed(0)
    model = effnet.create_model("efficientnet_lite0", num_classes=3)
    twin = effnet.create_model("efficientnet_lite0", num_classes=3)
    twin.load_state_dict(model.state_dict())
    model.eval(), twin.eval()  # no dropout draws: both see the same gradients
    start = model.classifier.weight.detach().clone()
    fused = build_optimizer(model.named_parameters(), "adamw", 1e-3, 0.05)
    plain = torch.optim.AdamW(param_groups(twin.named_parameters(), 0.05), lr=1e-3)
    assert all(g["fused"] for g in fused.param_groups)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
    for _ in range(3):
        for net, opt in ((model, fused), (twin, plain)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name  # the same update, to float rounding
    assert not torch.allclose(model.classifier.weight, start)  # and it did move
    meta = torch.nn.Linear(2, 2, device="meta")
    assert not adamw(meta.parameters(), 1e-3).param_groups[0]["fused"]  # falls back, no error
