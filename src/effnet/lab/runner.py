"""Run independent trials on one backend and keep their results in one directory.

Layout of a results directory::

    OUT/lab.json            the experiment: kind, base, data, recipe, candidates (written first)
    OUT/trials/<id>.json    one finished trial (written atomically: temp file, then rename)
    OUT/trials/<id>.failed.json   a trial that raised (retried on the next run)
    OUT/results.csv, results.json, <kind>.png   summaries, rewritten after every run

Resuming is re-running the same command: a trial whose ``<id>.json`` exists is not run again.
Each trial config is fingerprinted (a hash of everything it depends on), and a finished file
from a *different* config under the same id is an error, never silently reused.

Backends: ``serial`` (this process), ``process`` (a spawn-context process pool, each worker with
cores // workers torch threads) and ``ray`` (each trial a Ray task; the driver writes results, so
workers on other machines need no shared disk for them).
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import json
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from effnet.errors import ConfigError, RunDirError, did_you_mean
from effnet.files import read_json, write_json
from effnet.host import torch_threads, usable_cores
from effnet.lab.trial import failed_result, run_trial
from effnet.train.config import setting

__all__ = ["BACKENDS", "RunOptions", "RunReport", "fingerprint", "load_results", "run_trials"]

BACKENDS = ("serial", "process", "ray")

TrialFn = Callable[[dict[str, Any], int], dict[str, Any]]


@dataclass(frozen=True)
class RunOptions:
    """Where an experiment's trials run; results do not depend on it."""

    backend: str = setting("serial", "serial | process (a pool here) | ray")
    workers: int = setting(0, "parallel trials (0: one per core; process)")
    threads: int = setting(0, "torch threads per trial (0: cores / workers)")
    address: str | None = setting(None, "Ray cluster address (ray://HOST:10001 or auto)")
    progress: bool = setting(True, "progress bar")


def fingerprint(config: dict[str, Any]) -> str:
    """A short stable hash of everything a trial depends on."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _trial_path(out_dir: Path, trial_id: str, failed: bool = False) -> Path:
    return out_dir / "trials" / (f"{trial_id}.failed.json" if failed else f"{trial_id}.json")


def _finished(out_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    path = _trial_path(out_dir, config["id"])
    if not path.is_file():
        return None
    result = read_json(path, RunDirError, "delete it to run that trial again")
    if result.get("fingerprint") != config["fingerprint"]:
        raise RunDirError(
            f"{path} holds trial {config['id']!r} from a different configuration (data, recipe, "
            f"base or seed changed since it ran); use a new --out directory, or delete "
            f"{out_dir / 'trials'} to start over"
        )
    return result


def load_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished trial in ``out_dir``, sorted by id."""
    folder = Path(out_dir) / "trials"
    files = sorted(p for p in folder.glob("*.json") if not p.name.endswith(".failed.json"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]


@dataclass
class RunReport:
    """What :func:`run_trials` did: results of every finished trial, in the order given."""

    results: list[dict[str, Any]]
    ran: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    """Trials found finished in the directory and not run again."""
    failed: list[dict[str, Any]] = field(default_factory=list)
    backend: str = "serial"
    workers: int = 1
    threads: int = 1


def _plan(backend: str, workers: int, threads: int, pending: int) -> tuple[int, int]:
    """(parallel trials, torch threads per trial) for this machine."""
    cores = usable_cores()
    if backend == "serial":
        return 1, threads or cores
    if backend == "process":
        workers = workers or cores
        workers = max(1, min(workers, pending or 1))
        return workers, threads or max(1, cores // workers)
    return workers, threads or 1  # ray: the cluster's CPUs decide how many run at once


def run_trials(
    trials: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    backend: str = "serial",
    workers: int = 0,
    threads: int = 0,
    address: str | None = None,
    progress: bool = True,
    trial_fn: TrialFn = run_trial,
) -> RunReport:
    """Run every trial of ``trials`` not already finished in ``out_dir``.

    Each trial config needs a unique ``id`` (a file-name-safe string). ``workers`` = 0 sizes the
    process pool to the cores; ``threads`` = 0 gives each trial cores // workers threads (1 per
    Ray task). ``address`` is a Ray cluster (``ray://host:10001`` or ``auto``); without it Ray
    starts a local instance for the run. A trial that raises is recorded as failed and the
    others go on.
    """
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}."
            + did_you_mean(backend, BACKENDS)
        )
    if address and backend != "ray":
        raise ConfigError(f"--address is a Ray cluster address; add --backend ray (got {backend})")
    out = Path(out_dir)
    ids = [t["id"] for t in trials]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"trial ids must be unique, found {dupes} more than once")
    configs = [{**t, "fingerprint": fingerprint(dict(t))} for t in trials]
    done: dict[str, dict[str, Any]] = {}
    for config in configs:
        found = _finished(out, config)
        if found is not None:
            done[config["id"]] = found
    pending = [c for c in configs if c["id"] not in done]
    n_workers, n_threads = _plan(backend, workers, threads, len(pending))
    report = RunReport(
        [], resumed=list(done), backend=backend, workers=n_workers, threads=n_threads
    )

    bar = tqdm(
        total=len(configs),
        initial=len(done),
        desc=f"trials ({backend})",
        unit="trial",
        disable=None if progress else True,
        dynamic_ncols=True,
    )

    def record(config: dict[str, Any], result: dict[str, Any]) -> None:
        result["fingerprint"] = config["fingerprint"]
        failed_path = _trial_path(out, config["id"], failed=True)
        if result.get("status") == "ok":
            write_json(_trial_path(out, config["id"]), result)
            failed_path.unlink(missing_ok=True)
            done[config["id"]] = result
            report.ran.append(config["id"])
            acc = result.get("val_acc")
            bar.set_postfix_str(f"{config['id']}: val acc {acc}" if acc is not None else "")
        else:
            write_json(failed_path, result)
            report.failed.append(result)
            bar.write(f"trial {config['id']} failed: {result.get('error')}")
        bar.update(1)

    try:
        if pending:
            if backend == "serial":
                _run_serial(pending, n_threads, trial_fn, record)
            elif backend == "process":
                _run_pool(pending, n_workers, n_threads, trial_fn, record)
            else:
                _run_ray(pending, n_threads, address, trial_fn, record)
    finally:
        bar.close()
    report.results = [done[i] for i in ids if i in done]
    return report


def _run_serial(
    pending: list[dict[str, Any]], threads: int, trial_fn: TrialFn, record: Callable
) -> None:
    with torch_threads(threads):  # the caller's process keeps its own setting afterwards
        for config in pending:
            try:
                result = trial_fn(config, threads)
            except Exception as exc:  # one bad trial must not lose the others
                result = failed_result(config, exc)
            record(config, result)


def _run_pool(
    pending: list[dict[str, Any]],
    workers: int,
    threads: int,
    trial_fn: TrialFn,
    record: Callable,
) -> None:
    # spawn, not fork: forking a process that already runs torch's thread pools can deadlock,
    # and spawn behaves the same on Linux, macOS and Windows.
    context = multiprocessing.get_context("spawn")
    pool = futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        submitted = {pool.submit(trial_fn, config, threads): config for config in pending}
        for future in futures.as_completed(submitted):
            config = submitted[future]
            try:
                result = future.result()
            except Exception as exc:  # includes a worker that died (BrokenProcessPool)
                result = failed_result(config, exc)
            record(config, result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(
    pending: list[dict[str, Any]],
    threads: int,
    address: str | None,
    trial_fn: TrialFn,
    record: Callable,
) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--backend ray needs Ray, which is not installed; run `pip install 'effnet[ray]'` "
            "or use --backend process"
        ) from None
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            options["address"] = address
        else:
            options["num_cpus"] = usable_cores()
        ray.init(**options)
    try:
        remote = ray.remote(trial_fn)
        refs = {
            remote.options(num_cpus=threads, name=f"effnet-lab:{c['id']}").remote(c, threads): c
            for c in pending
        }
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                config = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # RayTaskError wraps the trial's own exception
                    result = failed_result(config, exc)
                record(config, result)
    finally:
        if started:
            ray.shutdown()
