"""Class balancing in the loss: inverse-frequency weights, and logit adjustment (the log priors
added to the logits in training only)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from effnet.data import LabelledSet
from effnet.train import FinetuneConfig
from effnet.train.run import make_loss


def _data(counts: list[int]) -> SimpleNamespace:
    samples = tuple((f"{c}_{i}.png", c) for c, n in enumerate(counts) for i in range(n))
    return SimpleNamespace(train=LabelledSet(samples, tuple("abc"[: len(counts)])))


def test_logit_adjustment_adds_the_log_priors() -> None:
    logits, targets = torch.randn(8, 3), torch.tensor([0, 1, 2, 0, 0, 1, 2, 0])
    config = FinetuneConfig(balance="logit", label_smoothing=0.0)
    loss = make_loss(config, _data([60, 30, 10]), torch.device("cpu"), mixing=False)
    prior = torch.tensor([0.6, 0.3, 0.1]).log()
    assert torch.allclose(loss(logits, targets), F.cross_entropy(logits + prior, targets))
    balanced = make_loss(config, _data([5, 5, 5]), torch.device("cpu"), mixing=False)
    assert torch.allclose(balanced(logits, targets), F.cross_entropy(logits, targets))


def test_a_minority_class_gets_the_larger_gradient() -> None:
    # one image of each class, logits all zero: the rare class's logit is pushed up harder
    data = _data([90, 10])
    for balance in ("loss", "logit"):
        logits = torch.zeros(2, 2, requires_grad=True)
        loss = make_loss(FinetuneConfig(balance=balance, label_smoothing=0.0), data,
                         torch.device("cpu"), mixing=False)  # fmt: skip
        loss(logits, torch.tensor([0, 1])).backward()
        assert logits.grad is not None
        common_push, rare_push = -logits.grad[0, 0], -logits.grad[1, 1]
        assert rare_push > common_push > 0, balance
