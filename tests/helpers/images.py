"""Tiny labelled picture folders that a network can learn from (plain colours plus noise)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}
GREYS = {"dark": (70, 70, 70), "light": (180, 180, 180)}


def make_folder(
    root: Path,
    classes: Mapping[str, tuple[int, int, int]] = COLOURS,
    *,
    per_class: int = 12,
    size: int = 40,
    noise: int = 60,
    seed: int = 0,
) -> Path:
    """``root/<class>/<class>_<i>.png``: noisy ``size`` px pictures whose mean colour is the
    class (the noise is uniform in [-noise, noise) per pixel and channel)."""
    rng = np.random.default_rng(seed)
    for name, rgb in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(
                np.array(rgb) + rng.integers(-noise, noise, size=(size, size, 3)), 0, 255
            )
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}_{i:02d}.png")
    return root
