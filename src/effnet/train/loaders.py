"""DataLoaders for a run: seeded per epoch (so a resumed run replays the same batches), sharded
under ``torchrun``, optionally class-balanced, serving the pictures ``load_source`` decoded.

A training loader decides alone whether its last, partial batch is dropped, so the number of
optimizer steps an epoch takes is ``len(loader)`` (:func:`optimizer_steps`) wherever it is asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from effnet.data import DecodedImages, ImageDataset, LabelledSet, balanced_sampler, load_image
from effnet.data.prepared import PreparedLoader, prepared_images, split_pipeline
from effnet.host import usable_cores
from effnet.train.distributed import DistContext

__all__ = ["ShardSampler", "epoch_seed", "make_loader", "num_workers", "optimizer_steps"]


def epoch_seed(seed: int, phase: str, epoch: int) -> int:
    """A distinct, reproducible seed for every (run seed, phase, epoch)."""
    return (seed * 1_000_003 + {"head": 1, "full": 2}.get(phase, 3) * 10_007 + epoch) % (2**31)


def num_workers(requested: int) -> int:
    """-1 = automatic: one loader process on small machines (the rest of the cores compute)."""
    if requested >= 0:
        return requested
    cores = usable_cores()
    return 1 if cores <= 4 else min(8, cores // 2)


def optimizer_steps(loader: DataLoader, accum_steps: int = 1) -> int:
    """Optimizer steps one epoch over ``loader`` takes (the last step may accumulate fewer)."""
    return max(1, math.ceil(len(loader) / accum_steps))


class ShardSampler(Sampler[int]):
    """Rank r takes samples r, r + world, ...: every sample exactly once across ranks (for
    evaluation, where DistributedSampler's padding would count some samples twice)."""

    def __init__(self, length: int, ctx: DistContext) -> None:
        self.indices = list(range(ctx.rank, length, ctx.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _EpochSampler(Sampler[int]):
    """A random permutation (or class-balanced draw) that depends only on the epoch's seed, then
    sharded across ranks with equal lengths (padded by wrapping, as DistributedSampler does)."""

    def __init__(self, data: LabelledSet, seed: int, ctx: DistContext, balance: bool) -> None:
        self.data, self.seed, self.ctx, self.balance = data, seed, ctx, balance
        self.per_rank = -(len(data) // -ctx.world_size)

    def __iter__(self) -> Iterator[int]:
        if self.balance:
            order = list(balanced_sampler(self.data, seed=self.seed))
        else:
            gen = torch.Generator().manual_seed(self.seed)
            order = torch.randperm(len(self.data), generator=gen).tolist()
        total = self.per_rank * self.ctx.world_size
        order = (order * (total // max(1, len(order)) + 1))[:total]
        return iter(order[self.ctx.rank : total : self.ctx.world_size])

    def __len__(self) -> int:
        return self.per_rank


def _drops_last(per_rank: int, batch_size: int) -> bool:
    """Drop the partial last batch once an epoch has two full ones (a small last batch gives
    noisy BatchNorm statistics and a noisy step), and always when it would hold one image
    (BatchNorm in train mode cannot normalise a 1x1 map of one image)."""
    return per_rank > 2 * batch_size or per_rank % batch_size == 1


def make_loader(
    data: LabelledSet,
    transform: Any,
    ctx: DistContext,
    *,
    batch_size: int,
    seed: int | None = None,
    workers: int = -1,
    balance: bool = False,
    images: Any = None,
    whole_epoch: bool = False,
    progress: bool = False,
) -> DataLoader | PreparedLoader:
    """A loader over ``data``; ``images`` (a :class:`~effnet.data.DecodedImages`) serves the
    pictures already decoded.

    When ``transform`` is the eval view or a flipped one (the ``none`` / ``flip`` presets) and
    ``images`` is given, the pictures are prepared once per size and batches are cut from one
    tensor (:mod:`effnet.data.prepared`: the same tensors, no per-image work, no workers;
    ``progress`` shows the preparation); any other transform runs image by image in a
    ``DataLoader``.

    With a ``seed``: one shuffled training epoch (make one per epoch with that epoch's seed),
    the partial last batch dropped by one rule for every caller, unless ``whole_epoch`` keeps
    it (every image counts, e.g. BatchNorm recalibration). Without: every sample exactly once,
    in dataset order (strided across ranks under torchrun), for evaluation.
    """
    sampler: Sampler[int]
    if seed is None:
        sampler, drop_last = ShardSampler(len(data), ctx), False
    else:
        sampler = _EpochSampler(data, seed, ctx, balance)
        drop_last = not whole_epoch and _drops_last(len(sampler), batch_size)
    loader_seed = (seed or 0) + 104_729 * ctx.rank
    pipeline = split_pipeline(transform) if isinstance(images, DecodedImages) else None
    if pipeline is not None:
        prepared = prepared_images(images, data, pipeline, progress=progress and ctx.is_main)
        if prepared is not None:
            return PreparedLoader(
                prepared, sampler, batch_size, drop_last=drop_last, seed=loader_seed
            )
    n_workers = num_workers(workers)
    return DataLoader(
        ImageDataset(data, transform, loader=images or load_image),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=n_workers,
        # the sampler's seed is shared (ranks must agree on the permutation); augmentation
        # randomness in the workers is per rank
        generator=torch.Generator().manual_seed(loader_seed),
        drop_last=drop_last,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if n_workers else None,
    )
