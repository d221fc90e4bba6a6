"""Pictures prepared once per size: the deterministic steps of a pipeline run once per image and
the result is kept as one uint8 tensor; every batch is then cut from it, flipped and
normalised as a whole.

A pipeline qualifies when it is the eval view, possibly flipped at random::

    ConvertChannels -> Resize -> CenterCrop -> [RandomHorizontalFlip] [RandomVerticalFlip]
                    -> ToImage -> ToDtype(float32, scale) -> Normalize

which is :func:`~effnet.data.eval_transform` and the ``none`` / ``flip`` training presets.
The prepared steps are the pipeline's own, and flips and normalisation act on each pixel alone,
so a batch holds the tensors the pipeline would give image for image (only the random flips are
drawn per batch, from the loader's seed).

Why: on a small machine the per-image pipeline is a sizeable share of every pass. Resizing a
300 px ELPV cell to 224 px takes ~2 ms in Pillow and the whole pipeline ~4 ms per image (232
images/s on 2 cores, against 93 images/s for the fused Lite0 itself: 40% on top of each
inference pass; ``benchmarks/passes.py``), and on a loaded machine torch's threads contend with
it. Every pass of a run (BatchNorm recalibration, features, each epoch, each evaluation)
repeated it. Prepared once, a batch costs one indexing and one fused normalisation (8,300
images/s).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import BatchSampler, Sampler
from torchvision.transforms import v2

from effnet.data.datasets import LabelledSet
from effnet.data.images import DecodedImages
from effnet.data.transforms import ConvertChannels

__all__ = ["PreparedImages", "PreparedLoader", "SplitPipeline", "prepared_images", "split_pipeline"]


@dataclass(frozen=True)
class SplitPipeline:
    """A qualifying pipeline in two parts: what is prepared once, and what each batch does."""

    prepare: v2.Compose
    """PIL picture -> uint8 (C, S, S) tensor: the pipeline's channel conversion, resize, crop."""
    channels: int
    """What the pipeline outputs (its ConvertChannels)."""
    hflip: float
    vflip: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def key(self) -> str:
        """What a prepared tensor depends on (the steps with their parameters)."""
        return repr(self.prepare)


def split_pipeline(transform: Any) -> SplitPipeline | None:
    """``transform`` as a :class:`SplitPipeline`, or None when it does anything else (random
    crops, colour jitter, RandAugment, erasing...), which must run image by image."""
    steps = list(getattr(transform, "transforms", ()))
    kinds = [type(s) for s in steps]
    head = [ConvertChannels, v2.Resize, v2.CenterCrop]
    if kinds[:3] != head or kinds[-3:] != [v2.ToImage, v2.ToDtype, v2.Normalize]:
        return None
    flips = steps[3:-3]
    if any(type(f) not in (v2.RandomHorizontalFlip, v2.RandomVerticalFlip) for f in flips):
        return None
    to_dtype, normalize = steps[-2], steps[-1]
    if to_dtype.dtype != torch.float32 or not to_dtype.scale:
        return None
    hflip = sum(f.p for f in flips if isinstance(f, v2.RandomHorizontalFlip))
    vflip = sum(f.p for f in flips if isinstance(f, v2.RandomVerticalFlip))
    if hflip > 1 or vflip > 1:  # the same flip twice: not one coin per image
        return None
    return SplitPipeline(
        prepare=v2.Compose([*steps[:3], v2.ToImage()]),
        channels=steps[0].in_chans,
        hflip=hflip,
        vflip=vflip,
        mean=tuple(float(m) for m in normalize.mean),
        std=tuple(float(s) for s in normalize.std),
    )


class PreparedImages:
    """One set's pictures through a pipeline's prepared steps: ``tensor`` (N, C, S, S) uint8,
    in the set's order. C is 1 for a set of grayscale pictures (expanded at batch time: the
    resize of a gray picture is the resize of each of its equal channels)."""

    def __init__(
        self, data: LabelledSet, pipeline: SplitPipeline, images: DecodedImages, *,
        progress: bool = False,
    ) -> None:  # fmt: skip
        from tqdm.auto import tqdm

        from effnet.host import torch_threads, usable_cores

        paths = [p for p, _ in data.samples]
        gray = pipeline.channels == 1 or all(images.mode_of(p) == "L" for p in paths)
        prepare = v2.Compose([ConvertChannels(1), *pipeline.prepare.transforms[1:]]) if gray else (
            pipeline.prepare
        )  # fmt: skip

        def one(path: Any) -> torch.Tensor:
            picture = images.peek(path)
            if gray and picture.mode != "L":  # a 1-channel model: the pipeline's own conversion
                picture = pipeline.prepare.transforms[0](picture)
            return prepare(picture)

        # torch's threads would only contend with Pillow's (which releases the GIL): one each
        with (
            torch_threads(1),
            ThreadPoolExecutor(min(usable_cores(), 8), thread_name_prefix="effnet-prep") as pool,
            tqdm(total=len(paths), desc="prepare", unit="img", leave=False,
                 disable=None if progress else True) as bar,
        ):  # fmt: skip
            out: list[torch.Tensor] = []
            for tensor in pool.map(one, paths):
                out.append(tensor)
                bar.update(1)
        self.tensor = torch.stack(out) if out else torch.empty(0, 1 if gray else 3, 0, 0)
        self.labels = torch.tensor([y for _, y in data.samples], dtype=torch.long)
        self.pipeline = pipeline

    @property
    def nbytes(self) -> int:
        return self.tensor.numel()

    def batch(self, index: Sequence[int], gen: torch.Generator | None = None) -> torch.Tensor:
        """Normalised float images for ``index``, flipped as the pipeline's coins say."""
        p = self.pipeline
        x = self.tensor[torch.as_tensor(index, dtype=torch.long)].float()
        scale = 1.0 / (255.0 * torch.tensor(p.std).view(1, -1, 1, 1))
        shift = -torch.tensor(p.mean).view(1, -1, 1, 1) / torch.tensor(p.std).view(1, -1, 1, 1)
        # Normalize(ToDtype(x)) = (x / 255 - mean) / std in one pass; a 1-channel tensor
        # broadcasts to the pipeline's channels here
        x = torch.addcmul(shift.expand(1, p.channels, 1, 1), x, scale.expand(1, p.channels, 1, 1))
        for prob, dims in ((p.hflip, (-1,)), (p.vflip, (-2,))):
            if prob > 0:
                coins = torch.rand(len(x), generator=gen) < prob
                if coins.any():
                    x[coins] = x[coins].flip(dims)
        return x


def estimated_bytes(data: LabelledSet, pipeline: SplitPipeline) -> int:
    """Upper bound of a :class:`PreparedImages` tensor for ``data`` (three channels)."""
    crop = pipeline.prepare.transforms[2].size
    return len(data) * 3 * int(crop[0]) * int(crop[1])


def prepared_images(
    images: DecodedImages, data: LabelledSet, pipeline: SplitPipeline, *, progress: bool = False
) -> PreparedImages | None:
    """The prepared tensor of ``data`` through ``pipeline``, made once and kept with ``images``
    (the run's one image cache) while within its byte budget; None when it would not fit."""
    key = (tuple(p for p, _ in data.samples), pipeline.key)
    memo: OrderedDict[Any, PreparedImages] = images.prepared
    if key in memo:
        memo.move_to_end(key)
        found = memo[key]
        # the same pictures and steps, perhaps other flips or normalisation
        if found.pipeline != pipeline:
            found = _rebound(found, pipeline)
        return found
    budget = images.prepared_budget
    need = estimated_bytes(data, pipeline)
    if need > budget:
        return None
    while memo and sum(m.nbytes for m in memo.values()) + need > budget:
        memo.popitem(last=False)  # the least recently used size goes first
    memo[key] = PreparedImages(data, pipeline, images, progress=progress)
    return memo[key]


def _rebound(found: PreparedImages, pipeline: SplitPipeline) -> PreparedImages:
    view = object.__new__(PreparedImages)
    view.tensor, view.labels, view.pipeline = found.tensor, found.labels, pipeline
    return view


class PreparedLoader:
    """Batches of a :class:`PreparedImages` in a sampler's order: what a ``DataLoader`` over the
    same set and pipeline gives (``len``, ``batch_sampler``, ``drop_last``), without workers."""

    def __init__(
        self, prepared: PreparedImages, sampler: Sampler[int], batch_size: int, *,
        drop_last: bool, seed: int,
    ) -> None:  # fmt: skip
        self.prepared = prepared
        self.sampler = sampler
        self.batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed)  # the same flips on every iteration
        for index in self.batch_sampler:
            yield self.prepared.batch(index, gen), self.prepared.labels[index]
