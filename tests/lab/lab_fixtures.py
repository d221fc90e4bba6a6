"""Tiny data, base and recipe for the lab tests (a plain module: no second conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from effnet.lab import DataConfig, LabBase, Recipe, resolve_base


def make_two_class_folder(root: Path, per_class: int = 10, size: int = 24) -> Path:
    """``root/{dark,light}/*.png``: noisy grey pictures whose brightness is the class."""
    rng = np.random.default_rng(0)
    for name, level in (("dark", 70), ("light", 180)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(level + rng.integers(-50, 50, size=(size, size, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}_{i:02d}.png")
    return root


def tiny_base() -> LabBase:
    """B0 at width and depth 0.25 and 32 px: 7 blocks, 0.5 MMACs, trains in a blink."""
    return resolve_base(
        "efficientnet_b0", width=0.25, depth=0.25, resolution=32, resolution_multiple=4
    )


def tiny_data(folder: Path) -> DataConfig:
    return DataConfig(source=str(folder), split="60/20/20")


def tiny_recipe(**changes: object) -> Recipe:
    options: dict[str, object] = dict(
        epochs=1, batch_size=4, eval_batch_size=8, latency_runs=2, warmup_epochs=0.0
    )
    options.update(changes)
    return Recipe(**options)  # type: ignore[arg-type]


def echo_trial(config: dict, threads: int) -> dict:
    """A stand-in trial for runner tests: no training, a result derived from the config."""
    return {
        **{k: v for k, v in config.items() if k not in ("spec",)},
        "status": "ok",
        "val_acc": 0.5 + 0.01 * int(config["seed"]),
        "threads_given": threads,
    }


def failing_trial(config: dict, threads: int) -> dict:
    raise RuntimeError(f"trial {config['id']} was not supposed to run")
