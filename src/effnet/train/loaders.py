"""DataLoaders for a run: seeded per epoch (so a resumed run replays the same batches), sharded
under ``torchrun``, optionally class-balanced, with decoded images kept in memory."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Sampler

from effnet.data import ImageDataset, LabelledSet, balanced_sampler, load_image
from effnet.train.distributed import DistContext

__all__ = ["CachedImages", "ShardSampler", "epoch_seed", "make_loader", "num_workers"]


def epoch_seed(seed: int, phase: str, epoch: int) -> int:
    """A distinct, reproducible seed for every (run seed, phase, epoch)."""
    return (seed * 1_000_003 + {"head": 1, "full": 2}.get(phase, 3) * 10_007 + epoch) % (2**31)


def num_workers(requested: int) -> int:
    """-1 = automatic: one loader process on small machines (the rest of the cores compute)."""
    if requested >= 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if (cores or 1) <= 4 else min(8, (cores or 1) // 2)


class CachedImages:
    """``load_image`` with a per-process memo: decode each file once, reuse it every epoch.

    Decoding a 300x300 PNG costs as much as augmenting it; on a 2-core machine that time comes
    straight out of the training step. Images are kept as PIL objects (8-bit), ~0.27 MB each at
    300x300 RGB.
    """

    def __init__(self) -> None:
        self._memo: dict[str, Image.Image] = {}

    def prefill(self, paths: list[Path], progress: bool = False) -> None:
        """Decode ``paths`` now, in this process, so that forked loader workers inherit them
        (a worker's own memo would die with it at the end of every epoch)."""
        from tqdm.auto import tqdm

        from effnet.data import UnreadableImageError

        for path in tqdm(
            paths, desc="decode", unit="img", leave=False, disable=None if progress else True
        ):
            with contextlib.suppress(UnreadableImageError):  # reported when actually used
                self(path)

    def __call__(self, path: str | os.PathLike[str]) -> Image.Image:
        key = os.fspath(path)
        image = self._memo.get(key)
        if image is None:
            image = load_image(Path(key))
            self._memo[key] = image
        return image.copy()  # transforms must not edit the cached picture


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


def make_loader(
    data: LabelledSet,
    transform: Any,
    ctx: DistContext,
    *,
    batch_size: int,
    train: bool,
    seed: int = 0,
    workers: int = -1,
    balance: bool = False,
    loader: Any = None,
    drop_last: bool = False,
) -> DataLoader:
    """A loader over ``data``. Train loaders shuffle with ``seed`` (make one per epoch)."""
    dataset = ImageDataset(data, transform, loader=loader or load_image)
    sampler: Sampler[int] = (
        _EpochSampler(data, seed, ctx, balance) if train else ShardSampler(len(data), ctx)
    )
    n_workers = num_workers(workers)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=n_workers,
        # the sampler's seed is shared (ranks must agree on the permutation); augmentation
        # randomness in the workers is per rank
        generator=torch.Generator().manual_seed(seed + 104_729 * ctx.rank),
        drop_last=drop_last,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if n_workers else None,
    )
