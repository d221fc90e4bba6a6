"""DataLoaders for a run: seeded per epoch (so a resumed run replays the same batches), sharded
under ``torchrun``, optionally class-balanced, with decoded images kept in memory.

A training loader decides alone whether its last, partial batch is dropped, so the number of
optimizer steps an epoch takes is ``len(loader)`` (:func:`optimizer_steps`) wherever it is asked.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Sampler

from effnet.data import ImageDataset, LabelledSet, balanced_sampler, load_image
from effnet.host import usable_cores
from effnet.train.distributed import DistContext

__all__ = [
    "ImageCache",
    "ShardSampler",
    "epoch_seed",
    "eval_loader",
    "num_workers",
    "optimizer_steps",
    "train_loader",
]


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


class ImageCache:
    """``load_image`` with a per-process memo: decode each file once, reuse it every epoch.

    Decoding a 300x300 PNG costs as much as augmenting it; on a 2-core machine that time comes
    straight out of the training step. Images are kept as PIL objects (8-bit), ~0.27 MB each at
    300x300 RGB. ``max_side`` shrinks a picture whose short side is longer once, when it is
    decoded: trials of the scaling lab train at 32-200 px, where keeping the originals would
    cost ~10x the memory per worker and make every random crop resample a needlessly big
    picture (twice the training size leaves a 35% crop near full detail).
    """

    def __init__(self, max_side: int | None = None) -> None:
        self.max_side = max_side
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
            image = self._shrink(load_image(Path(key)))
            self._memo[key] = image
        return image.copy()  # transforms must not edit the cached picture

    def _shrink(self, image: Image.Image) -> Image.Image:
        short = min(image.size)
        if self.max_side is None or short <= self.max_side:
            return image
        w, h = image.size
        size = (round(w * self.max_side / short), round(h * self.max_side / short))
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


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


def train_loader(
    data: LabelledSet,
    transform: Any,
    ctx: DistContext,
    *,
    batch_size: int,
    seed: int,
    workers: int = -1,
    balance: bool = False,
    images: Any = None,
    whole_epoch: bool = False,
) -> DataLoader:
    """A shuffled loader for one epoch (make one per epoch with that epoch's ``seed``).

    ``whole_epoch`` keeps the partial last batch (every image counts, e.g. BatchNorm
    recalibration); otherwise the loader drops it by one rule for every caller.
    """
    sampler = _EpochSampler(data, seed, ctx, balance)
    drop_last = not whole_epoch and _drops_last(len(sampler), batch_size)
    return _loader(data, transform, sampler, ctx, batch_size, seed, workers, images, drop_last)


def eval_loader(
    data: LabelledSet,
    transform: Any,
    ctx: DistContext,
    *,
    batch_size: int,
    workers: int = -1,
    images: Any = None,
) -> DataLoader:
    """Every sample exactly once, in dataset order (strided across ranks under torchrun)."""
    sampler = ShardSampler(len(data), ctx)
    return _loader(data, transform, sampler, ctx, batch_size, 0, workers, images, False)


def _loader(
    data: LabelledSet,
    transform: Any,
    sampler: Sampler[int],
    ctx: DistContext,
    batch_size: int,
    seed: int,
    workers: int,
    images: Any,
    drop_last: bool,
) -> DataLoader:
    n_workers = num_workers(workers)
    return DataLoader(
        ImageDataset(data, transform, loader=images or load_image),
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
