"""The EMA (torch's AveragedModel): weights and BatchNorm statistics averaged, counts copied,
the decay warmed up, and the older hand-written EMA's saved state still loads."""

from __future__ import annotations

import pytest
import torch

import effnet
from effnet.train.ema import ModelEma


def shift(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.add_(1.0 if t.is_floating_point() else 5)


def test_an_update_averages_weights_and_statistics_and_copies_counts() -> None:
    model = effnet.create_model("efficientnet_lite0", num_classes=3)
    ema = ModelEma(model, 0.9)
    shift(model)
    ema.update_parameters(model)  # the first update copies the model
    for key, value in ema.module.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    shift(model)
    ema.update_parameters(model)
    d = ema.decay_at(1)
    assert d == pytest.approx(2 / 11)  # warmup: min(0.9, (1 + n) / (10 + n))
    for key, value in ema.module.state_dict().items():
        now = model.state_dict()[key]
        if value.is_floating_point():  # running_mean / running_var too
            torch.testing.assert_close(value, d * (now - 1) + (1 - d) * now)
        else:  # num_batches_tracked: a count, copied
            assert torch.equal(value, now), key
    assert ema.decay_at(10_000) == 0.9
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_state_round_trips_and_the_older_format_loads() -> None:
    model = effnet.create_model("efficientnet_lite0", num_classes=3)
    ema = ModelEma(model, 0.99)
    for _ in range(3):
        shift(model)
        ema.update_parameters(model)
    again = ModelEma(effnet.create_model("efficientnet_lite0", num_classes=3), 0.99)
    again.load_state_dict(ema.state_dict())
    assert int(again.n_averaged) == 3
    old = {"decay": 0.99, "updates": 7, "module": ema.module.state_dict()}
    again.load_state_dict(old)
    assert int(again.n_averaged) == 7
    for key, value in ema.module.state_dict().items():
        assert torch.equal(again.module.state_dict()[key], value)
    with pytest.raises(ValueError, match="decay"):
        ModelEma(model, 1.0)
