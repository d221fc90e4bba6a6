"""Training checkpoints: model weights in effnet's format plus the state needed to resume.

``last.safetensors`` / ``best.safetensors`` are ordinary effnet weight files (``effnet predict
--checkpoint`` and ``effnet evaluate`` load them). ``last.train.pt`` holds what resuming needs:
phase and epoch, optimizer, scheduler, grad scaler, EMA, history and the best score. Every file
is written to a temporary name and renamed, so a kill at any moment leaves the previous complete
checkpoint in place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_training_state", "save_training_state"]

STATE_FILE = "last.train.pt"


def save_training_state(run_dir: Path, state: dict[str, Any]) -> Path:
    path = run_dir / STATE_FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".tmp", dir=run_dir)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load_training_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{run_dir} has no {STATE_FILE}: nothing to resume (the run never finished an epoch, "
            f"or this is not a run directory). Start it again without --resume."
        )
    return torch.load(path, map_location="cpu", weights_only=True)
