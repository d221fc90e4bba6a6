"""A run's state and every file that holds it: this room alone saves, restores and reloads them.

``last.safetensors`` / ``best.safetensors`` are ordinary effnet weight files (``effnet predict
--checkpoint`` and ``effnet evaluate`` load them). ``last.train.pt`` holds the :class:`RunState`:
phase and epoch, the optimizer, scheduler, grad scaler and EMA state, the raw (non-EMA) weights,
the history and the best score. ``metrics.jsonl`` is the history, one epoch a line. Every file is
written to a temporary name and renamed, so a kill at any moment leaves the previous complete
checkpoint in place.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effnet.errors import RunDirError
from effnet.files import atomic_write, write_text
from effnet.train.loop import TrainSetup

__all__ = [
    "STATE_FILE",
    "RunState",
    "check_new_run_dir",
    "load_best",
    "load_last",
    "load_run_state",
    "save_checkpoint",
    "store_temperature",
]

STATE_FILE = "last.train.pt"


@dataclass
class RunState:
    """Where a run is and everything needed to continue it exactly.

    The training objects (optimizer, scheduler, scaler, EMA: a
    :class:`~effnet.train.loop.TrainSetup`) live in the phase that trains; at the end of every
    epoch :meth:`capture` copies their state here, and a resumed phase hands its freshly built
    ones to :meth:`restore`.
    """

    phase: str = ""
    """``"head"``, ``"full"``, or ``""`` before the first finished epoch."""
    epoch: int = 0
    """Finished epochs of ``phase``."""
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: str = ""
    stale_epochs: int = 0
    """Epochs since the validation score last improved (early stopping)."""
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    ema: dict[str, Any] | None = None
    model: dict[str, torch.Tensor] | None = None
    """The raw weights that train; the saved ``last.safetensors`` may be the EMA's."""

    def done(self, phase: str, epochs: int) -> int:
        """Finished epochs of ``phase`` out of ``epochs`` (all of them once a later phase ran)."""
        order = ("", "head", "full")
        if order.index(self.phase) > order.index(phase):
            return epochs
        return self.epoch if self.phase == phase else 0

    def record(self, row: dict[str, Any], score: float | None) -> bool:
        """Add an epoch's row to the history; True when ``score`` is the best so far."""
        self.history.append(row)
        improved = score is not None and score > self.best_score
        if improved:
            self.best_score, self.best_epoch = float(score), f"{row['phase']} {row['epoch']}"
        self.stale_epochs = 0 if improved else self.stale_epochs + 1
        return improved

    def capture(self, phase: str, epoch: int, setup: TrainSetup, model: nn.Module | None) -> None:
        """Copy the state of ``setup``'s optimizer, scheduler, scaler and EMA, and ``model``'s
        raw weights, after ``epoch`` (0-based) of ``phase``."""
        self.phase, self.epoch = phase, epoch + 1
        self.optimizer = setup.optimizer.state_dict()
        for name in ("scheduler", "scaler", "ema"):
            held = getattr(setup, name)
            setattr(self, name, None if held is None else held.state_dict())
        self.model = None if model is None else model.state_dict()

    def restore(self, phase: str, setup: TrainSetup, model: nn.Module | None) -> None:
        """Load the saved state into ``setup``'s freshly built objects and ``model``, when this
        run stopped in ``phase``."""
        if self.phase != phase or self.optimizer is None:
            return
        setup.optimizer.load_state_dict(self.optimizer)
        for name in ("scheduler", "scaler", "ema"):
            held, saved = getattr(setup, name), getattr(self, name)
            if held is not None and saved is not None:
                held.load_state_dict(saved)
        if model is not None and self.model is not None:
            model.load_state_dict(self.model)


def save_checkpoint(run_dir: Path, state: RunState, weights: nn.Module, *, improved: bool) -> None:
    """After an epoch: the history, the weights to use (``last``, and ``best`` when this epoch
    improved), then the run state. The state goes last: a kill between the files leaves a
    state that points at an epoch whose weights are already on disk."""
    from effnet.weights.native import save_model

    row = state.history[-1] if state.history else {}
    write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in state.history))
    save_model(weights, run_dir / "last", extra={"epoch": row})
    if improved:
        save_model(weights, run_dir / "best", extra={"epoch": row})
    atomic_write(run_dir / STATE_FILE, lambda tmp: torch.save(_as_file(state), tmp))


def store_temperature(weights_file: Path, temperature: float) -> None:
    """Add the calibration temperature fitted at the end of a run to the metadata of the
    weights file it was fitted for (rewritten atomically); predict, evaluate and export apply
    it (:func:`effnet.weights.native.stored_temperature`)."""
    from effnet.weights.io import read_state_dict, write_safetensors
    from effnet.weights.native import TEMPERATURE_KEY

    weights, meta = read_state_dict(weights_file)
    write_safetensors(weights_file, weights, {**meta, TEMPERATURE_KEY: float(temperature)})


def _as_file(state: RunState) -> dict[str, Any]:
    # not dataclasses.asdict: it would deep-copy every tensor of the model and optimizer
    return {f.name: getattr(state, f.name) for f in fields(state)}


def load_run_state(run_dir: Path) -> RunState:
    """The state of the last finished epoch of the run in ``run_dir``."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        raise RunDirError(
            f"{run_dir} has no {STATE_FILE}: nothing to resume (the run never finished an epoch, "
            f"or this is not a run directory). Start it again without --resume."
        )
    saved = torch.load(path, map_location="cpu", weights_only=True)
    known = {f.name for f in fields(RunState)}
    return RunState(**{k: v for k, v in saved.items() if k in known})


def load_last(run_dir: Path, model: nn.Module) -> None:
    """The weights saved at the end of the last finished epoch (``last.safetensors``)."""
    from effnet.weights.io import read_state_dict

    weights, _ = read_state_dict(run_dir / "last.safetensors")
    model.load_state_dict(weights)


def load_best(run_dir: Path, model: nn.Module) -> Path:
    """Load the best weights by validation score into ``model`` (the last ones when no epoch
    was ever scored, e.g. without a val split); returns the file used."""
    from effnet.weights.io import read_state_dict

    best = run_dir / "best.safetensors"
    path = best if best.is_file() else run_dir / "last.safetensors"
    weights, _ = read_state_dict(path)
    model.load_state_dict(weights)
    return path


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse to start a run over another one's checkpoints."""
    if (run_dir / STATE_FILE).exists():
        raise RunDirError(
            f"{run_dir} already holds a run; continue it with --resume (effnet.resume), or "
            f"choose another --out"
        )
