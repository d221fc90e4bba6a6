"""Class-balance helpers: inverse-frequency loss weights and a seeded balanced sampler.

Two remedies for skewed sets such as ELPV (1508 / 295 / 106 / 715): weight the loss, or
sample minority classes more often. Use one, not both, or the minority is corrected twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import WeightedRandomSampler

from effnet.data.datasets import LabelledSet
from effnet.errors import ConfigError

__all__ = ["balanced_sampler", "class_counts", "class_weights"]


def class_counts(labels: LabelledSet | Sequence[int], num_classes: int | None = None) -> list[int]:
    """Images per class index (length ``num_classes``, or the set's class count)."""
    if isinstance(labels, LabelledSet):
        num_classes = len(labels.classes) if num_classes is None else num_classes
        labels = labels.labels
    if num_classes is None:
        num_classes = max(labels, default=-1) + 1
    counts = [0] * num_classes
    for y in labels:
        if not 0 <= y < num_classes:
            raise ConfigError(
                f"label {y} is outside [0, {num_classes}); pass the right num_classes"
            )
        counts[y] += 1
    return counts


def class_weights(counts: Sequence[int], *, power: float = 1.0) -> torch.Tensor:
    """Loss weights ``(N / (C * n_c)) ** power`` for ``CrossEntropyLoss(weight=...)``.

    With ``power=1`` each class contributes equally to the loss and a balanced set gets all
    ones; ``power=0.5`` is the softer square-root weighting often better on very skewed sets.
    """
    if not counts or any(n <= 0 for n in counts):
        raise ConfigError(
            f"every class needs at least one sample to get a weight, got counts {list(counts)}; "
            "drop empty classes first"
        )
    total, num = float(sum(counts)), len(counts)
    return torch.tensor([(total / (num * n)) ** power for n in counts], dtype=torch.float32)


def balanced_sampler(
    labels: LabelledSet | Sequence[int],
    *,
    num_samples: int | None = None,
    seed: int = 0,
    power: float = 1.0,
) -> WeightedRandomSampler:
    """A sampler drawing every class equally often (``power=1``), with replacement.

    ``num_samples`` defaults to the set size (one "epoch"). The sampler owns a generator seeded
    with ``seed``: the sequence of epochs is reproducible, each epoch different. Pass it to
    ``DataLoader(sampler=...)`` with ``shuffle=False``.
    """
    ys = labels.labels if isinstance(labels, LabelledSet) else list(labels)
    weights = class_weights(class_counts(labels), power=power)
    per_sample = weights[torch.tensor(ys, dtype=torch.long)].double()
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        per_sample, num_samples or len(ys), replacement=True, generator=generator
    )
