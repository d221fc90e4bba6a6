"""Experiment trackers a run also reports its epochs to: TensorBoard and MLflow.

Both are optional extras (``pip install 'effnet[tensorboard]'``, ``'effnet[mlflow]'``).
:func:`check_trackers` runs before the run directory is touched, so a tracker whose package is
missing stops the run with one line that names the install, not a traceback after a half-made
run directory. Only the main process reports.

* **TensorBoard**: ``RUN/tensorboard``, one scalar per metric per epoch (``tensorboard --logdir
  runs``).
* **MLflow**: through an explicit ``MlflowClient`` (no module-global state). The store is
  ``MLFLOW_TRACKING_URI`` when set, else MLflow's local store beside the run directory,
  ``sqlite:///<runs>/mlflow.db`` (``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``):
  MLflow 3.7 put the ``./mlruns`` file store in maintenance mode and refuses it unless
  ``MLFLOW_ALLOW_FILE_STORE=true``, and its own local default is now this SQLite file. Runs
  go to the experiment ``MLFLOW_EXPERIMENT_NAME`` (default ``effnet``), named after the run
  directory, with the config as parameters; a resumed run continues its MLflow run (found by
  the tag ``effnet.run_dir``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

from effnet.errors import ConfigError

__all__ = ["METRICS", "Trackers", "check_trackers", "open_trackers"]

log = logging.getLogger(__name__)

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s")
"""The keys of an epoch's row the trackers receive."""

_RUN_TAG = "effnet.run_dir"


class _Sink(Protocol):
    def log_epoch(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


def _needs(config: Any) -> list[tuple[str, str, str]]:
    """(flag, module, what to install) for each tracker ``config`` turns on."""
    wanted = []
    if getattr(config, "tensorboard", False):
        wanted.append(("--tensorboard", "tensorboard", "effnet[tensorboard]"))
    if getattr(config, "mlflow", False):
        wanted.append(("--mlflow", "mlflow", "effnet[mlflow]"))
        if not os.environ.get("MLFLOW_TRACKING_URI"):  # the local store: a SQLite database
            wanted.append(("--mlflow", "sqlalchemy", "effnet[mlflow]"))
    return wanted


def check_trackers(config: Any) -> None:
    """Raise :class:`ConfigError` (one line, the install to run) when a tracker the config
    turns on cannot be imported."""
    for flag, module, extra in _needs(config):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"{flag} needs the {module} package, which is not installed: "
                f"pip install '{extra}' (or run without {flag})"
            )


class Trackers:
    """Where an epoch's metrics go besides ``metrics.jsonl``."""

    def __init__(self, sinks: list[_Sink]) -> None:
        self.sinks = sinks

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        metrics = {k: float(row[k]) for k in METRICS if row.get(k) is not None}
        for sink in self.sinks:
            sink.log_epoch(metrics, step)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def open_trackers(config: Any, run_dir: Path) -> Trackers | None:
    """The trackers ``config`` turns on, writing for the run in ``run_dir`` (None: none)."""
    check_trackers(config)
    sinks: list[_Sink] = []
    if config.tensorboard:
        sinks.append(_TensorBoard(run_dir))
    if config.mlflow:
        sinks.append(_MLflow(config, run_dir))
    return Trackers(sinks) if sinks else None


class _TensorBoard:
    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log_epoch(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class _MLflow:
    def __init__(self, config: Any, run_dir: Path) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        run_dir = run_dir.resolve()
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{run_dir.parent / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "effnet")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name)
        )
        earlier = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{_RUN_TAG}` = '{run_dir}'", max_results=1
        )
        if earlier:  # a resumed run reports into the MLflow run it started
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                experiment_id, run_name=run_dir.name, tags={_RUN_TAG: str(run_dir)}
            )
            self.run_id = run.info.run_id
            params = [Param(k, str(v)[:500]) for k, v in sorted(config.to_dict().items())]
            self.client.log_batch(self.run_id, params=params)
        log.info("MLflow: run %s in experiment %r at %s", self.run_id, name, uri)

    def log_epoch(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
