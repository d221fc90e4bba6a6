"""The eager model is a plain ``nn.Module`` (hooks, BatchNorm, fx, double backward); the speed
tricks live in the explicit fused model, which matches it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import effnet
from effnet.export import optimize
from effnet.layers import FusedMBConv, MBConv, SqueezeExcite
from effnet.specs import rescale
from helpers.models import randomise_batchnorm

# one of each family: SE + SiLU + symmetric padding; ReLU6 + SAME padding; Fused-MBConv
NAMES = ["efficientnet_b0", "tf_efficientnet_lite0", "efficientnetv2_b0"]
BLOCKS = (MBConv, FusedMBConv, SqueezeExcite)


def trained_like(name: str) -> nn.Module:
    """Random weights with non-trivial BatchNorm statistics (so folding BN changes numbers)."""
    torch.manual_seed(0)
    return randomise_batchnorm(effnet.create_model(name, num_classes=10))


def capture(model: nn.Module, x: torch.Tensor, clone: bool) -> dict[str, torch.Tensor]:
    """Every module's output as a forward hook sees it (kept as is, or cloned at once): convs,
    BatchNorms and activations, and the blocks (MBConv, FusedMBConv, SqueezeExcite), stages,
    head, pool and classifier around them; the model's own output is ``"model"``."""
    seen: dict[str, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(
            lambda mod, args, out, n=n or "model": seen.__setitem__(
                n, out.clone() if clone else out
            )
        )
        for n, m in model.named_modules()
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("name", NAMES)
def test_hooks_see_the_tensors_the_model_goes_on_to_use(name: str) -> None:
    """Nothing a hook captured is modified later in place (SE rescale, residual add, in-place
    activations used to do that under no_grad: a hooked projection changed 36x)."""
    model = trained_like(name)
    x = torch.randn(2, 3, 64, 64)
    kept, cloned = capture(model, x, clone=False), capture(model, x, clone=True)
    assert kept.keys() == cloned.keys()
    # every module ran and was seen but the drop paths of blocks without a shortcut
    unseen = {n or "model" for n, _ in model.named_modules()} - kept.keys()
    assert all(n.endswith(".drop_path") for n in unseen), sorted(unseen)
    blocks = [n for n, m in model.named_modules() if isinstance(m, BLOCKS)]
    assert len(blocks) > 10 and set(blocks) <= kept.keys()
    for key in kept:
        assert torch.equal(kept[key], cloned[key]), key


def test_hook_capture_catches_an_in_place_op_on_a_block_output() -> None:
    """The check above can fail where the old one (convs, BatchNorms, activations only) could
    not: a block that scales its input in place changes the previous block's output, a
    residual sum no conv, BatchNorm or activation returns."""
    model = trained_like("efficientnet_b0")
    block, previous = model.stages[3][2], "stages.3.1"  # stages.3.1 adds its shortcut
    original = block.forward

    def scales_its_input(x: torch.Tensor) -> torch.Tensor:
        out = original(x)
        x.mul_(2)
        return out

    block.forward = scales_its_input
    x = torch.randn(2, 3, 64, 64)
    kept, cloned = capture(model, x, clone=False), capture(model, x, clone=True)
    changed = {k for k in kept if not torch.equal(kept[k], cloned[k])}
    assert previous in changed
    modules = dict(model.named_modules())
    old_kinds = (nn.Conv2d, nn.BatchNorm2d, nn.SiLU, nn.ReLU6)
    assert not [k for k in changed if isinstance(modules.get(k), old_kinds)]


@pytest.mark.parametrize("name", NAMES)
def test_every_batchnorm_runs_once_per_forward_in_eval_and_train(name: str) -> None:
    model = trained_like(name)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    calls = {id(m): 0 for m in bns}
    for m in bns:
        m.register_forward_hook(lambda mod, a, o: calls.__setitem__(id(mod), calls[id(mod)] + 1))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model.eval()(x)
    assert set(calls.values()) == {1}
    model.train()(x).sum().backward()
    assert set(calls.values()) == {2}


@pytest.mark.parametrize("name", NAMES)
def test_fx_symbolic_trace_and_torchvision_feature_extractor(name: str) -> None:
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model = trained_like(name)
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 65, 64)  # odd size: SAME padding computes its pads at run time
    torch.testing.assert_close(traced(x), model(x))
    _, eval_nodes = get_graph_node_names(model)
    assert "head.bn" in eval_nodes and "stem.bn" in eval_nodes  # BatchNorm is a node of its own
    end_of_stage_4 = [n for n in eval_nodes if n.startswith("stages.3.")][-1]
    extractor = create_feature_extractor(model, {end_of_stage_4: "mid", "head.act": "last"})
    out = extractor(x)
    assert out["mid"].shape[1] == model.spec.stages[3].out_channels
    assert out["last"].shape[1] == model.num_features


@pytest.mark.parametrize("name", NAMES)
def test_double_backward_for_gradient_penalties(name: str) -> None:
    # float64 convolutions have no fast CPU kernels: a quarter-width, quarter-depth network of
    # the same family (same blocks, padding and BatchNorm) keeps this quick
    spec = rescale(effnet.get_spec(name), width=0.25, depth=0.25)
    model = effnet.create_model(spec, num_classes=3).double().train()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    penalty = grad.pow(2).sum()
    penalty.backward()
    assert model.stem.conv.weight.grad is not None
    assert torch.isfinite(model.stem.conv.weight.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_fused_model_matches_the_plain_model_and_leaves_it_alone(name: str) -> None:
    model = trained_like(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize(model)  # a deep copy: BN folded, in-place SE/residual/activations
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fast(x.contiguous(memory_format=torch.channels_last)), model(x),
                                   atol=2e-5, rtol=1e-4)  # fmt: skip
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    # model.fuse() is the same transformation, in place
    fused = trained_like(name).fuse()
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=2e-5, rtol=1e-4)


def test_plain_model_trains_with_autograd_and_channels_last() -> None:
    model = effnet.create_model("efficientnet_b0", num_classes=4).train()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.stem.bn.num_batches_tracked.item() == 1


def test_grad_checkpointing_gives_the_same_step_with_less_saved_for_backward() -> None:
    """Same loss, gradients and BatchNorm statistics (updated once, not again in the recompute),
    same stochastic-depth draws; far fewer tensors kept for backward."""
    from effnet.bench import saved_tensor_bytes

    torch.manual_seed(0)
    plain = effnet.create_model("efficientnet_b0", num_classes=5, drop_path_rate=0.3).train()
    ckpt = effnet.create_model("efficientnet_b0", num_classes=5, drop_path_rate=0.3).train()
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_grad_checkpointing(True)
    x = torch.randn(4, 3, 64, 64)
    torch.manual_seed(1)
    _, kept_plain = saved_tensor_bytes(lambda: plain(x).square().mean().backward())
    torch.manual_seed(1)
    _, kept_ckpt = saved_tensor_bytes(lambda: ckpt(x).square().mean().backward())
    assert kept_ckpt < 0.4 * kept_plain
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
    for (name, a), b in zip(plain.state_dict().items(), ckpt.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    ckpt.eval()  # inference never checkpoints
    with torch.no_grad():
        torch.testing.assert_close(ckpt(x), plain.eval()(x))
