"""Tiny data, base and recipe for the lab tests, and stand-in trials for the runner tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effnet.lab import DataConfig, LabBase, Recipe, resolve_base
from helpers.images import GREYS, make_folder


def make_two_class_folder(root: Path, per_class: int = 10, size: int = 24) -> Path:
    """``root/{dark,light}/*.png``: noisy grey pictures whose brightness is the class."""
    return make_folder(root, GREYS, per_class=per_class, size=size, noise=50)


def tiny_base() -> LabBase:
    """B0 at width and depth 0.25 and 32 px: 7 blocks, 0.5 MMACs, trains in a blink."""
    return resolve_base(
        "efficientnet_b0", width=0.25, depth=0.25, resolution=32, resolution_multiple=4
    )


def tiny_data(folder: Path) -> DataConfig:
    return DataConfig(source=str(folder), split="60/20/20")


def tiny_recipe(**changes: Any) -> Recipe:
    options: dict[str, Any] = dict(
        epochs=1, batch_size=4, eval_batch_size=8, latency_runs=2, warmup_epochs=0.0
    )
    options.update(changes)
    return Recipe(**options)


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
