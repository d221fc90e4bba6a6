"""The one loop: fit() epoch by epoch, its early stop, and the loader's one drop_last rule."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from effnet.data import LabelledSet
from effnet.train import Epoch, TrainSetup, fit
from effnet.train.distributed import DistContext
from effnet.train.loaders import make_loader, optimizer_steps


def _batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 4, generator=gen)
    return [(x[i : i + 4], (x[i : i + 4, 0] > 0).long()) for i in range(0, 12, 4)]


def test_fit_runs_each_planned_epoch_reseeded_and_stops_when_asked() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    steps: list[int] = []
    setup = TrainSetup(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        DistContext(),
        on_step=lambda: steps.append(1),
    )
    seen: list[int] = []

    def plan(epoch: int) -> Epoch:
        return Epoch(_batches(epoch), F.cross_entropy, seed=100 + epoch)

    def end(epoch: int, stats: object) -> bool:
        seen.append(epoch)
        assert torch.initial_seed() == 100 + epoch  # every epoch reseeds from its own seed
        return epoch == 3  # stop after the fourth

    history = fit(setup, range(1, 10), plan, end)
    assert seen == [1, 2, 3] and len(history) == 3 and len(steps) == 3 * 3
    assert all(s.images == 12 for s in history)


def test_the_loader_alone_decides_drop_last(tmp_path) -> None:
    data = LabelledSet(tuple((tmp_path / f"{i}.png", 0) for i in range(33)), ("a",), tmp_path)
    ctx = DistContext()

    def batches(n: int, batch: int, **kw: object) -> int:
        part = LabelledSet(data.samples[:n], data.classes, data.root)
        return len(make_loader(part, None, ctx, batch_size=batch, **kw))

    assert batches(33, 8, seed=0) == 4  # over two full batches: the partial one is dropped
    assert batches(12, 8, seed=0) == 2  # two batches or fewer: kept
    assert batches(17, 8, seed=0) == 2  # a last batch of one image: dropped (BatchNorm)
    assert batches(33, 8, seed=0, whole_epoch=True) == 5  # every image counts
    assert batches(33, 8) == 5  # evaluation: every sample once
    assert optimizer_steps(make_loader(data, None, ctx, batch_size=8, seed=0), 3) == 2


def test_tta_returns_the_averaged_output_and_the_unflipped_view_logits() -> None:
    from effnet.train.loop import evaluate

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 8, 8, generator=gen)
    batches = [(x[:4], torch.tensor([0, 1, 2, 0])), (x[4:], torch.tensor([1, 2]))]
    plain = evaluate(model, batches, DistContext())
    assert plain.view_logits is None
    tta = evaluate(model, batches, DistContext(), tta=True, tta_vflip=True)
    assert tta.view_logits is not None
    torch.testing.assert_close(tta.view_logits, plain.logits)  # what predict computes
    with torch.no_grad():
        views = [model(v).softmax(1) for v in (x, x.flip(-1), x.flip(-2), x.flip(-2, -1))]
    torch.testing.assert_close(tta.logits, torch.stack(views).mean(0).log())
