"""BatchNorm recalibration through the fused model (effnet.train.recalibration) against the
train-mode pass it replaces, on a small Lite0 and real photos."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import effnet
from effnet.train.recalibration import measure_batchnorm, sample_size


def _photos(size: int = 64, count: int = 24) -> torch.Tensor:
    """Crops of skimage's photos, normalised: real image statistics, not noise."""
    data = pytest.importorskip("skimage.data")
    pictures = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    crops = []
    gen = torch.Generator().manual_seed(0)
    for i in range(count):
        pic = torch.from_numpy(pictures[i % len(pictures)]).permute(2, 0, 1).float() / 255
        top = int(torch.randint(0, pic.shape[1] - 2 * size, (1,), generator=gen))
        left = int(torch.randint(0, pic.shape[2] - 2 * size, (1,), generator=gen))
        crop = pic[:, top : top + 2 * size, left : left + 2 * size]
        crops.append(nn.functional.interpolate(crop[None], size=size, mode="area")[0])
    x = torch.stack(crops)
    return (x - 0.5) / 0.25


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    m = effnet.create_model("tf_efficientnet_lite0", num_classes=3)
    # statistics that are not the photos' (as pretrained ones are not a new dataset's)
    for bn in (b for b in m.modules() if isinstance(b, nn.BatchNorm2d)):
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.normal_(0, 0.2)
    return m.eval()


def _train_mode(model: nn.Module, batches: list[torch.Tensor]) -> nn.Module:
    m = copy.deepcopy(model)
    from effnet.train.recalibration import _measure_in_train_mode

    with torch.no_grad():
        _measure_in_train_mode(m, batches, channels_last=True)
    return m


def _fused(model: nn.Module, batches: list[torch.Tensor], **kw: object) -> nn.Module:
    m = copy.deepcopy(model)
    seen, how = measure_batchnorm(m, batches, **kw)  # type: ignore[arg-type]
    assert how == "fused"
    assert seen == sum(b.shape[0] for b in batches)
    return m


def _bns(m: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {n: b for n, b in m.named_modules() if isinstance(b, nn.BatchNorm2d)}


def test_one_batch_read_whole_gives_train_modes_statistics(model: nn.Module) -> None:
    """One batch, every position: the pooled statistics are the batch's, and normalising by
    them is what train-mode BatchNorm does, so every layer matches the train-mode pass."""
    x = _photos(count=8)
    ref = _bns(_train_mode(model, [x]))
    got = _bns(_fused(model, [x], positions=None))
    assert len(got) == 49
    for name, bn in ref.items():
        sd = torch.sqrt(bn.running_var + bn.eps)
        assert ((got[name].running_mean - bn.running_mean).abs() / sd).max() < 1e-3, name
        ratio = (got[name].running_var + bn.eps) / (bn.running_var + bn.eps)
        assert (ratio - 1).abs().max() < 1e-3, name
        assert int(got[name].num_batches_tracked) == 1


def test_the_stems_statistics_are_the_exact_moments_over_all_images(model: nn.Module) -> None:
    x = _photos(count=24)
    got = _fused(model, list(x.split(8)), positions=None)
    with torch.no_grad():
        y = model.stem.conv(x)
    mean, var = y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3))
    torch.testing.assert_close(got.stem.bn.running_mean, mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.stem.bn.running_var, var, atol=1e-4, rtol=1e-3)


def _eval_mismatch(m: nn.Module, batches: list[torch.Tensor]) -> float:
    """How far the running statistics are from those the eval-mode model's BatchNorm inputs
    have on ``batches``, at the worst channel of any layer, in standard deviations."""
    sums: dict[str, list[torch.Tensor]] = {}

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(_mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            sums.setdefault(name, []).append(inputs[0].mean(dim=(0, 2, 3)))

        return record

    bns = _bns(m)
    handles = [bn.register_forward_pre_hook(hook(n)) for n, bn in bns.items()]
    m.eval()
    with torch.no_grad():
        for b in batches:
            m(b)
    for h in handles:
        h.remove()
    worst = 0.0
    for name, bn in bns.items():
        mean = torch.stack(sums[name]).mean(0)
        err = (bn.running_mean - mean).abs() / torch.sqrt(bn.running_var + bn.eps)
        worst = max(worst, float(err.max()))
    return worst


def test_deep_statistics_agree_with_the_eval_model_as_train_modes_do(model: nn.Module) -> None:
    """Several batches: the estimates describe what the eval-mode model then sees, about as
    closely as the train-mode pass's do; without the per-batch normalisation they would not."""
    batches = list(_photos(count=32).split(8))
    train = _eval_mismatch(_train_mode(model, batches), batches)
    fused = _eval_mismatch(_fused(model, batches), batches)
    untouched = _eval_mismatch(copy.deepcopy(model), batches)
    assert untouched > 1.0  # the starting statistics are far off: the check can fail
    assert fused < max(0.3, 3 * train), (fused, train)


def test_sampled_positions_estimate_the_moments_closely(model: nn.Module) -> None:
    x = _photos(size=96, count=32)  # stem: 48 x 48 x 8 = 18,432 positions a batch, sampled
    assert sample_size(8 * 48 * 48, 32) < 8 * 48 * 48
    got = _fused(model, list(x.split(8)))
    with torch.no_grad():
        y = model.stem.conv(x)
    sd = y.std(dim=(0, 2, 3))
    assert ((got.stem.bn.running_mean - y.mean(dim=(0, 2, 3))).abs() / sd).max() < 0.05
    assert ((got.stem.bn.running_var / y.var(dim=(0, 2, 3))).log().abs()).max() < 0.1
    again = _fused(model, list(x.split(8)))  # seeded: the same positions, the same result
    assert torch.equal(again.stem.bn.running_var, got.stem.bn.running_var)


def test_channels_first_reads_the_same_positions_as_channels_last(model: nn.Module) -> None:
    batches = list(_photos(size=96, count=16).split(8))
    last = _bns(_fused(model, batches, channels_last=True))
    first = _bns(_fused(model, batches, channels_last=False))
    for name, bn in last.items():
        torch.testing.assert_close(first[name].running_mean, bn.running_mean, atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(first[name].running_var, bn.running_var, atol=1e-4, rtol=1e-3)


def test_weights_are_untouched_and_a_zero_gamma_channel_stays_finite(model: nn.Module) -> None:
    m = copy.deepcopy(model)
    m.stem.bn.weight.data[0] = 0.0  # a channel switched off: its output is beta alone
    before = {k: v.clone() for k, v in m.state_dict().items()}
    measure_batchnorm(m, list(_photos(count=16).split(8)))
    after = m.state_dict()
    for key, value in before.items():
        if "running_" in key or "num_batches" in key:
            assert torch.isfinite(after[key]).all(), key
        else:
            assert torch.equal(after[key], value), key
    assert not m.training


def test_a_model_with_a_batchnorm_elsewhere_takes_the_train_mode_pass() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    x = torch.randn(6, 3, 8, 8) * 3 + 1
    seen, how = measure_batchnorm(net, [x[:3], x[3:]], channels_last=False)
    assert (seen, how) == (6, "train-mode")
    with torch.no_grad():
        y = net[0](x)
    torch.testing.assert_close(net[1].running_mean, y.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-5)
    assert not net.training
