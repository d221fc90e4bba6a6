"""Tiny, learnable image folders for fine-tuning tests (plain module: no second conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def make_folder(root: Path, per_class: int = 12, size: int = 40, seed: int = 0) -> Path:
    """``root/<colour>/*.png``: noisy images whose mean colour is the class."""
    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-60, 60, size=(size, size, 3))
            pixels = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i:02d}.png")
    return root


def tiny_config(data: Path, out: Path, **overrides):  # type: ignore[no-untyped-def]
    from effnet.train import FinetuneConfig

    base = dict(
        data=str(data),
        out=str(out),
        model="efficientnet_lite0",
        image_size=32,
        batch_size=8,
        eval_batch_size=16,
        head_epochs=1,
        epochs=2,
        workers=0,
        split="60/20/20",
        progress=False,
        drop_rate=0.0,
    )
    base.update(overrides)
    return FinetuneConfig(**base)
