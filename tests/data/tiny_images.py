"""Tiny generated image files for the data tests (16x16 px so the suite stays fast).

A plain helper module, not a ``conftest.py``: the tests import ``conftest`` by name for the
shared reference numbers, and a second conftest here would shadow that one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save_rgb(path: Path, color: tuple[int, int, int], size: int = 16) -> Path:
    """A solid picture; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)
    return path


def save_corrupt(path: Path, seed: int = 0) -> Path:
    """Random bytes named like an image: what a failed download leaves behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(600))
    return path


def make_class_folder(root: Path, counts: dict[str, int]) -> Path:
    """``root/<class>/img_<i>.png``, ``counts[class]`` solid images in distinct colours."""
    for k, (name, n) in enumerate(counts.items()):
        for i in range(n):
            save_rgb(root / name / f"img_{i:03d}.png", (40 * k % 256, 7 * i % 256, 99))
    return root


def save_truncated_jpeg(path: Path, seed: int = 0, size: int = 64) -> Path:
    """A JPEG cut in half: its header reads fine (``Image.verify`` passes), decoding fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, format="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path
