"""A run's state and every file that holds it: this room alone saves, restores and reloads them,
and decides what may happen to a run directory.

``last.safetensors`` / ``best.safetensors`` are ordinary effnet weight files (``effnet predict
--checkpoint`` and ``effnet evaluate`` load them). ``last.train.pt`` holds the :class:`RunState`:
phase and epoch, the optimizer, scheduler, grad scaler and EMA state, the raw (non-EMA) weights,
the history and the best score. ``metrics.jsonl`` is the history, one epoch a line.

Every file is written to a temporary name and renamed (:func:`effnet.files.atomic_write`). After
an epoch the weights go first, then the run state, which is the commit point, then the metrics:
a kill or a full disk at any moment leaves a run state that resumes exactly, and a resumed run
trusts the state (its weights, its history) and rewrites ``metrics.jsonl`` from it.

A run directory is created fresh or resumed, never overwritten (:func:`claim_run_dir`): a new run
refuses a directory that holds another run's files unless told ``overwrite``, and one process at
a time holds a run (an OS lock on ``.effnet.lock``, released when the process ends, however it
ends).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effnet.errors import DiskFullError, RunDirError
from effnet.files import atomic_write, no_space_error, write_text
from effnet.train.loop import TrainSetup

fcntl: Any
try:
    import fcntl
except ImportError:  # Windows: no flock; runs are then not locked (see claim_run_dir)
    fcntl = None

__all__ = [
    "LOCK_FILE",
    "RUN_FILES",
    "STATE_FILE",
    "RunState",
    "claim_run_dir",
    "load_best",
    "load_last",
    "load_run_state",
    "run_files",
    "save_checkpoint",
    "store_temperature",
    "write_metrics",
]

STATE_FILE = "last.train.pt"
LOCK_FILE = ".effnet.lock"
RUN_FILES = (
    "config.yaml",
    "plan.json",
    "lr_find.json",
    "data.json",
    STATE_FILE,
    "metrics.jsonl",
    "last.safetensors",
    "last.json",
    "best.safetensors",
    "best.json",
    "report.json",
    "report.html",
    "curves.png",
    "confusion.png",
    "predictions_*.npz",
    "tensorboard",
    "mlruns",
)
"""Every file (or pattern, or folder) a run writes in its directory: what makes a directory hold
a run, and what ``overwrite`` deletes. A new file a run writes is added here."""


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
    full_epochs: int | None = None
    """Phase 2's epochs when the time budget changed them after its first epoch (the
    learning-rate schedule and a resumed run follow this, not the planned count)."""
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    ema: dict[str, Any] | None = None
    model: dict[str, torch.Tensor] | None = None
    """The model's raw weights after the epoch, in either phase: what a resumed run starts from
    (the saved ``last.safetensors`` may be the EMA's, or one epoch ahead after a crash)."""

    def done(self, phase: str, epochs: int) -> int:
        """Finished epochs of ``phase`` out of ``epochs`` (all of them once a later phase ran)."""
        order = ("", "head", "full")
        if order.index(self.phase) > order.index(phase):
            return epochs
        return self.epoch if self.phase == phase else 0

    def record(self, row: dict[str, Any], score: float | None, margin: float = 0.0) -> bool:
        """Add an epoch's row to the history; True when the epoch becomes the selected one.

        ``best_score`` is the highest score so far. An epoch is selected when it sets it, or
        when it is later and within ``margin`` (the score's standard error on the validation
        split) of it: a later epoch the validation images cannot tell from the best one wins
        (the one-standard-error rule), so a tiny split's noise does not send the run back to a
        half-trained epoch. Early stopping counts only epochs that set a new best."""
        self.history.append(row)
        if score is None:
            self.stale_epochs += 1
            return False
        record = score > self.best_score
        selected = record or score >= self.best_score - margin
        if record:
            self.best_score = float(score)
        if selected:
            self.best_epoch = f"{row['phase']} {row['epoch']}"
        self.stale_epochs = 0 if record else self.stale_epochs + 1
        return selected

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
    """After an epoch: the weights to use (``last``, and ``best`` when this epoch improved), then
    the run state (the commit point), then the history. A crash between the files leaves a state
    from which the run resumes exactly: weights one epoch ahead of it are rewritten identically
    when the epoch is redone, and a history behind it is rewritten from it."""
    from effnet.weights.native import save_model

    row = state.history[-1] if state.history else {}
    committed = False
    try:
        save_model(weights, run_dir / "last", extra={"epoch": row})
        if improved:
            save_model(weights, run_dir / "best", extra={"epoch": row})
        atomic_write(run_dir / STATE_FILE, lambda tmp: _save_state(state, tmp))
        committed = True
        write_metrics(run_dir, state.history)
    except DiskFullError as exc:
        epoch = f"{row.get('phase', '?')} epoch {row.get('epoch', '?')}"
        if committed:
            fix = f"The run stopped after {epoch}; free some space, then continue it with"
        elif (run_dir / STATE_FILE).is_file():
            fix = f"The run stopped in {epoch}; free some space, then redo it with"
        else:
            fix = "No epoch was saved yet; free some space, then start the run again with"
        resume = "--overwrite" if fix.startswith("No epoch") else f"--resume {run_dir}"
        raise no_space_error(exc.filename or run_dir, f"{fix} {resume}") from exc


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.jsonl``: the history, one epoch a line."""
    write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def _save_state(state: RunState, tmp: Path) -> None:
    # through a Python file: a full disk then raises OSError(ENOSPC), which torch's own writer
    # would turn into an anonymous RuntimeError
    with open(tmp, "wb") as fh:
        torch.save(_as_file(state), fh)


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
    """The state of the last finished epoch of the run in ``run_dir``; a file that is not a run
    state effnet wrote (truncated, pickled objects, another file) is an error that names it."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        raise RunDirError(
            f"{run_dir} has no {STATE_FILE}: nothing to resume (the run never finished an epoch, "
            f"or this is not a run directory). Start it again without --resume."
        )
    fix = (
        "The run cannot be resumed from it: restore the file, or start the run again "
        "(--overwrite, or another --out)"
    )
    try:
        with open(path, "rb") as fh:
            saved = torch.load(fh, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or pickled-object files
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "Unpickling" in text:
            why = "it pickles Python objects, which effnet never unpickles (that could run code)"
        elif "zip" in text.lower() or "central directory" in text or "EOF" in text:
            why = "it is truncated or corrupt"
        else:
            why = f"torch cannot read it ({text.splitlines()[0] if text else type(exc).__name__})"
        raise RunDirError(f"{path} is not a readable run state: {why}. {fix}") from exc
    if not isinstance(saved, dict) or saved.get("phase") not in ("", "head", "full"):
        raise RunDirError(f"{path} is not a run state effnet wrote (no phase and epoch). {fix}")
    known = {f.name for f in fields(RunState)}
    state = RunState(**{k: v for k, v in saved.items() if k in known})
    if not isinstance(state.epoch, int) or not isinstance(state.history, list):
        raise RunDirError(f"{path} is not a run state effnet wrote (its epoch or history). {fix}")
    return state


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


def run_files(run_dir: Path) -> list[Path]:
    """The files of :data:`RUN_FILES` that ``run_dir`` holds."""
    found: list[Path] = []
    for name in RUN_FILES:
        found.extend(sorted(run_dir.glob(name)) if "*" in name else [run_dir / name])
    return [p for p in found if p.exists()]


@contextlib.contextmanager
def claim_run_dir(
    run_dir: Path, *, resume: bool, overwrite: bool = False, main: bool = True
) -> Iterator[RunState]:
    """Hold ``run_dir`` for one run while the block runs; yields the state the run starts from.

    * A new run (``resume=False``) gets an empty or new directory, or one without any of
      :data:`RUN_FILES`; a directory holding another run's files is refused, unless
      ``overwrite``, which deletes those files (and only those) first.
    * A resumed run gets the state of its last finished epoch; ``metrics.jsonl`` is rewritten
      from that state, so the history on disk matches the checkpoint the run continues from.
    * One process at a time: an exclusive ``flock`` on ``.effnet.lock`` refuses a second
      process (a second run, or a resume of a run still going). The OS releases it when the
      process ends, however it ends, so a killed run never leaves a stale lock. (On systems
      without ``fcntl`` runs are not locked.)

    ``main``: the process that writes (rank 0 under torchrun); the others only read the state.
    """
    if not main:
        yield load_run_state(run_dir) if resume else RunState()
        return
    created = not run_dir.exists()
    try:
        with _lock(run_dir):
            for stale in _temporaries(run_dir):  # a kill mid-write leaves these
                stale.unlink(missing_ok=True)
            if resume:
                state = load_run_state(run_dir)
                write_metrics(run_dir, state.history)
            else:
                _make_room(run_dir, overwrite)
                state = RunState()
            yield state
    except BaseException:
        # a run that failed before writing anything (bad data, say) leaves no empty folder
        with contextlib.suppress(OSError):
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                (run_dir / LOCK_FILE).unlink()
                run_dir.rmdir()
        raise


def _make_room(run_dir: Path, overwrite: bool) -> None:
    found = run_files(run_dir)
    if not found:
        return
    names = ", ".join(p.name for p in found[:6]) + (", ..." if len(found) > 6 else "")
    if not overwrite:
        if (run_dir / STATE_FILE).is_file():
            raise RunDirError(
                f"{run_dir} already holds a run ({names}); continue it with --resume {run_dir} "
                f"(effnet.resume), start it over with --overwrite (deletes its results), or "
                f"choose another --out"
            )
        raise RunDirError(
            f"{run_dir} already holds the results of a run ({names}); effnet never overwrites "
            f"them: choose another --out, or pass --overwrite (overwrite=True) to delete them "
            f"and start over"
        )
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _temporaries(run_dir: Path) -> list[Path]:
    """Temporary files :func:`effnet.files.atomic_write` left in ``run_dir`` when killed."""
    if not run_dir.is_dir():
        return []
    return [p for name in RUN_FILES for p in run_dir.glob(f".{name}.*.tmp")]


@contextlib.contextmanager
def _lock(run_dir: Path) -> Iterator[None]:
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a run directory; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+", encoding="utf-8") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise RunDirError(
                    f"{run_dir} is in use by another effnet run ({holder}); wait for it to end, "
                    f"or choose another --out. The lock goes when that process ends, even if it "
                    f"is killed"
                ) from None
            except OSError as exc:  # a file system without locks (some network mounts)
                warnings.warn(
                    f"cannot lock {run_dir} ({exc}); nothing stops a second run from using it",
                    stacklevel=3,
                )
        fh.seek(0)
        fh.truncate()
        fh.write(
            f"pid {os.getpid()} on {socket.gethostname()}, since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        )
        fh.flush()
        yield  # closing the file releases the lock
