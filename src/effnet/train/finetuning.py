"""The two-phase transfer-learning workflow (seed, section 6.1) as one function.

1. Load pretrained weights; replace the head with one sized for the data.
2. Phase 1 ("head"): freeze the backbone (BatchNorm statistics too) and train the head at ~1e-3.
   Without random augmentation the frozen backbone's features never change, so they are
   computed once and the head trains on them in seconds.
3. Phase 2 ("full"): unfreeze everything; AdamW at ~1e-4 with warmup and cosine decay.
4. Evaluate the best checkpoint on the held-out test split; fit the temperature that calibrates
   its probabilities (on the validation split, else on up to 1,000 training images) and store it
   with the checkpoint; write report.json, the plots and the web page report.html.

Every epoch ends with an atomic checkpoint; :func:`resume` continues a killed run and, because
every epoch reseeds from (seed, phase, epoch), finishes with the same result as an uninterrupted
run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from effnet.data import load_source, write_data_record
from effnet.data.splits import SplitFractions
from effnet.errors import ConfigError, RunDirError
from effnet.files import write_json
from effnet.host import fast_malloc, torch_threads
from effnet.train.checkpoint import (
    RunState,
    claim_run_dir,
    load_best,
    load_last,
    store_temperature,
)
from effnet.train.config import (
    FinetuneConfig,
    TrainConfig,
    field_metadata,
    load_config,
    merge_config,
    save_config,
)
from effnet.train.distributed import DistContext, init_distributed, peer_failures
from effnet.train.loop import EvalResult, resolve_amp
from effnet.train.metrics import classification_report
from effnet.train.phases import phase_full, phase_head, recalibrate_bn
from effnet.train.plan import needs_plan, plan_run
from effnet.train.run import Run, build_model, score, weights_source
from effnet.train.trackers import check_trackers, open_trackers

__all__ = ["FinetuneResult", "finetune", "resume", "resume_config", "train"]


@dataclass
class FinetuneResult:
    run_dir: Path
    report: dict[str, Any]
    history: list[dict[str, Any]]
    timings: dict[str, float]
    best_checkpoint: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float | None:
        return self.report.get("test", {}).get("accuracy")

    def summary(self) -> dict[str, Any]:
        """The run in a few JSON-ready keys (``effnet finetune --json``): where it is, its test
        metrics (None without a test split), its files and timings."""
        test = self.report.get("test", {})
        return {
            "run_dir": str(self.run_dir),
            "best_checkpoint": str(self.best_checkpoint) if self.best_checkpoint else None,
            "best_epoch": self.report.get("best_epoch"),
            "accuracy": test.get("accuracy"),
            "balanced_accuracy": test.get("balanced_accuracy"),
            "macro_f1": test.get("macro_f1"),
            "test_images": test.get("num_samples"),
            "files": self.files,
            "timings": self.timings,
        }


def finetune(
    config: FinetuneConfig,
    on_step: Callable[[], None] | None = None,
    *,
    overwrite: bool = False,
    config_file: str | Path | None = None,
) -> FinetuneResult:
    """Run the two-phase fine-tuning described by ``config`` in a new run directory.

    ``on_step`` is called after every optimizer step of phase 2 (progress hooks, tests).

    The run directory (``config.out``) must be new, empty, or hold no run's files: one that holds
    another run is refused (:class:`~effnet.errors.RunDirError`), unless ``overwrite``, which
    deletes that run's files first. ``config_file``: the YAML file ``config`` was read from
    (``--config``); it is never rewritten, so a run whose resolved ``config.yaml`` would replace
    it is refused.
    """
    return _run(config, on_step, resume=False, overwrite=overwrite, config_file=config_file)


def train(config: FinetuneConfig, *args: Any, **kwargs: Any) -> FinetuneResult:
    """Train from scratch: one phase, the same loop, checkpoints and reports as fine-tuning.

    Pass a :class:`~effnet.train.config.TrainConfig` (random init, SGD, longer schedule); under
    ``torchrun`` every process runs this and they form one job. The other arguments are
    :func:`finetune`'s (``on_step``, ``overwrite``, ``config_file``).
    """
    return finetune(config, *args, **kwargs)


def resume(
    run_dir: str | Path, on_step: Callable[[], None] | None = None, **overrides: Any
) -> FinetuneResult:
    """Continue the run in ``run_dir`` from its last finished epoch (fine-tuning or training).

    The result is the one an uninterrupted run would have given. ``overrides`` may change:

    * how the run executes: ``workers``, ``cache_images``, ``device``, ``threads``,
      ``eval_batch_size``, ``progress``, ``tensorboard``; and ``early_stop`` and ``tta``;
    * ``epochs``, to train phase 2 longer, when the learning rate does not depend on the run's
      length (``schedule`` ``constant`` or ``step``, no ``progressive`` schedule).

    Anything else would change what the finished epochs computed: a :class:`ConfigError` says so.
    The run continues from its run state (``last.train.pt``): the weights, optimizer and
    history of the last epoch it committed; ``metrics.jsonl`` is rewritten from that state.
    """
    path = Path(run_dir)
    config = resume_config(path, **overrides)
    return _run(config, on_step, resume=True)


def resume_config(run_dir: Path, **overrides: Any) -> FinetuneConfig:
    """The saved config of the run in ``run_dir`` with the ``overrides`` a resume can honour."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise RunDirError(f"cannot resume {run_dir}: it has no config.yaml; is it a run directory?")
    saved_config = load_config(saved)
    wanted = merge_config(saved_config, {k: v for k, v in overrides.items() if k != "out"})
    changed = [
        f.name
        for f in dataclasses.fields(wanted)
        if getattr(wanted, f.name) != getattr(saved_config, f.name)
    ]
    refused = [
        k for k in changed if k != "epochs" and not field_metadata(type(wanted), k).get("resumable")
    ]
    if refused:
        allowed = [f.name for f in dataclasses.fields(wanted) if f.metadata.get("resumable")]
        raise ConfigError(
            f"a resumed run cannot change {', '.join(refused)}: the finished epochs were computed "
            f"with the saved values. It can change {', '.join(allowed)} and extend epochs; for "
            f"anything else start a new run (e.g. --weights {run_dir / 'best.safetensors'})"
        )
    if wanted.epochs != saved_config.epochs:
        _check_extension(saved_config, wanted.epochs, run_dir)
    return dataclasses.replace(wanted, out=str(run_dir))


def _check_extension(config: FinetuneConfig, epochs: int, run_dir: Path) -> None:
    why = ""
    if epochs < config.epochs:
        why = f"it would end before the {config.epochs} epochs it was planned with"
    elif config.progressive:
        why = "the progressive schedule spreads its stages over the planned epochs"
    elif config.schedule == "cosine":
        why = "the cosine decay was planned over the run's length: the learning rate would jump"
    if why:
        raise ConfigError(
            f"cannot resume {run_dir} with --epochs {epochs} (planned {config.epochs}): {why}. "
            f"Resume with the planned epochs, or start a new run from its weights "
            f"(--weights {run_dir / 'best.safetensors'})"
        )


def _run(
    config: FinetuneConfig,
    on_step: Callable[[], None] | None,
    *,
    resume: bool,
    overwrite: bool = False,
    config_file: str | Path | None = None,
) -> FinetuneResult:
    wall = time.perf_counter()
    ctx = init_distributed(config.device)
    run_dir = config.run_dir
    amp = _check_before_work(config, ctx, config_file)
    with (
        peer_failures(ctx, run_dir),
        torch_threads(config.threads),
        fast_malloc(),
        claim_run_dir(run_dir, resume=resume, overwrite=overwrite, main=ctx.is_main) as state,
    ):
        run, timings = _prepare_run(config, ctx, state, amp, wall, plan=not resume)
        c = run.config
        if c.bn_recalibrate and state.phase == "":
            timings["bn_recalibrate_seconds"] = recalibrate_bn(run)
        if c.head_epochs and state.done("head", c.head_epochs) < c.head_epochs:
            timings.update(phase_head(run, state))
        if c.epochs and c.lr == "auto":
            run, timings["lr_find_seconds"] = _find_lr(run)
        if c.epochs:
            timings.update(phase_full(run, state, on_step))
        result = _finish(run, state, timings, wall)
        result.timings["wall_seconds"] = round(time.perf_counter() - wall, 2)
        if run.ctx.is_main:
            write_json(run.run_dir / "report.json", {**result.report, "timings": result.timings})
        run.log(_summary(result))
    return result


def _find_lr(run: Run) -> tuple[Run, float]:
    """Phase 2's learning rate from a range test (``lr: auto``), saved in the run's config."""
    from effnet.train.lr_find import find_lr

    start = time.perf_counter()
    found = find_lr(run)
    run = dataclasses.replace(run, config=dataclasses.replace(run.config, lr=found.lr))
    if run.ctx.is_main:
        save_config(run.config, run.run_dir / "config.yaml")
        write_json(run.run_dir / "lr_find.json", found.to_dict())
    return run, round(time.perf_counter() - start, 2)


def _summary(result: FinetuneResult) -> str:
    """The end-of-run lines: test accuracy and balanced accuracy, then where the time went."""
    t, test = result.timings, result.report.get("test")
    lines = []
    if test:
        lines.append(
            f"result: test accuracy {test['accuracy']:.4f}, balanced accuracy "
            f"{test['balanced_accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} "
            f"({test['num_samples']} images)"
        )
    passes = [(k.removesuffix("_seconds"), v) for k, v in t.items() if k.endswith("_seconds")]
    lines.append(
        "time: "
        + ", ".join(f"{k.replace('_', ' ')} {v:.0f}s" for k, v in passes if k != "wall")
        + f"; wall {t.get('wall_seconds', 0.0) / 60:.1f} min"
    )
    return "\n".join(lines)


def _check_before_work(
    config: FinetuneConfig, ctx: DistContext, config_file: str | Path | None
) -> torch.dtype | None:
    """Everything that can be checked before the run directory is touched and the data read:
    every value (again: a config is a mutable dataclass), the model name, the weights, the
    mixed precision the device allows, the file the run must not rewrite. Returns the autocast
    dtype."""
    from effnet.registry import get_spec
    from effnet.weights import resolve_weights

    config.validate()
    check_trackers(config)  # a missing tracker package: one line, before the run directory
    amp = resolve_amp(config.amp, ctx.device)
    run_dir = config.run_dir
    if config.model != "auto":  # auto: chosen by the plan among the models with weights here
        spec = get_spec(config.model)  # an unknown name says which names are near
        if config.freeze_stages > len(spec.stages):
            raise ConfigError(
                f"freeze_stages must be in 0..{len(spec.stages)} ({config.model} has "
                f"{len(spec.stages)} stages), got {config.freeze_stages}"
            )
        resolve_weights(config.model, weights_source(config))  # a tag or file not there
    elif config.weights not in ("default", "none"):
        raise ConfigError(
            f"--model auto chooses among catalogued weights; with --weights {config.weights} "
            f"name the model those weights are for (--model NAME)"
        )
    data = Path(config.data).expanduser()
    if data.is_dir() and run_dir.resolve().is_relative_to(data.resolve()):
        raise ConfigError(
            f"the run directory {run_dir} is inside the data folder {data}: the next scan would "
            f"read its plots as pictures of a class; choose an --out outside {data}"
        )
    saved = run_dir / "config.yaml"
    if config_file is not None and Path(config_file).resolve() == saved.resolve():
        raise ConfigError(
            f"--config {config_file} is where the run saves its resolved config ({saved}); "
            f"effnet never rewrites your config file: keep it outside the run directory or "
            f"under another name (e.g. {run_dir.parent / (run_dir.name + '.yaml')}), or choose "
            f"another --out"
        )
    return amp


def _prepare_run(
    config: FinetuneConfig,
    ctx: DistContext,
    state: RunState,
    amp: torch.dtype | None,
    started: float,
    *,
    plan: bool,
) -> tuple[Run, dict[str, float]]:
    """Read the data, plan what the config leaves to the plan (a new run), build the model and
    write the run's config and split record; returns the run and the timings so far."""
    run_dir = config.run_dir
    torch.manual_seed(config.seed)
    timings: dict[str, float] = {}
    data = load_source(
        config.data,
        label_mode=config.label_mode,
        fractions=SplitFractions.parse(config.split),
        seed=config.seed,
        keep_images=config.cache_images,  # decoded once, here, before any loader worker forks
        progress=config.progress and ctx.is_main,
    )
    timings["scan_seconds"] = round(time.perf_counter() - started, 2)
    the_plan = None
    if plan and needs_plan(config):
        start = time.perf_counter()
        config, the_plan = plan_run(config, data, ctx.device, started, _log_main(ctx))
        amp = resolve_amp(config.amp, ctx.device)
        timings["plan_seconds"] = round(time.perf_counter() - start, 2)
    elif state.full_epochs is not None:  # the budget changed phase 2's length: keep to it
        config = dataclasses.replace(config, epochs=state.full_epochs)
    model = build_model(config, data)
    if state.model is not None:  # the run state's weights: what the last committed epoch left
        model.load_state_dict(state.model)
    elif state.phase:  # a run state from before the head phase saved its weights
        load_last(run_dir, model)
    model.to(ctx.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    writer = None
    if ctx.is_main:
        save_config(config, run_dir / "config.yaml")
        if the_plan is not None:
            write_json(run_dir / "plan.json", the_plan.to_dict())
        write_data_record(run_dir, data)
        writer = open_trackers(config, run_dir)
    run = Run(config, ctx, run_dir, data, model, amp, data.images, writer, the_plan, started)
    d = data
    command = "train" if isinstance(config, TrainConfig) else "finetune"
    weights = {"default": "pretrained weights", "none": "random init"}.get(
        config.weights, f"weights {config.weights}"
    )
    run.log(
        f"effnet {command}: {config.model} ({weights}) on {config.data}: "
        f"{d.num_classes} classes, train {len(d.train)}, val {len(d.val) if d.val else 0}, test "
        f"{len(d.test) if d.test else 0}, {d.num_skipped} unreadable skipped; "
        f"{model.preprocess.input_size}px; run dir {run_dir}"
        + (f"; resumed after {state.phase} epoch {state.epoch}" if state.phase else "")
    )
    return run, timings


def _log_main(ctx: DistContext) -> Callable[[str], None]:
    def log(message: str) -> None:
        if ctx.is_main:
            logging.getLogger("effnet.train").info(message)

    return log


def _finish(run: Run, state: RunState, timings: dict[str, float], started: float) -> FinetuneResult:
    """Reload the best weights (by validation accuracy; the last ones without a val split),
    evaluate on the test split, calibrate, write the report and the plots. ``started``: the
    run's ``time.perf_counter()`` at its start (the page's wall time)."""
    c = run.config
    run.ctx.barrier()  # under torchrun: every rank reads what the main process wrote
    best_file = load_best(run.run_dir, run.model)
    report: dict[str, Any] = {
        "model": c.model,
        "weights": c.weights,
        "data": run.data.to_dict() | {"split": None},
        "num_skipped_images": run.data.num_skipped,
        "best_epoch": state.best_epoch or "last",
        "selected_by": c.select_by,
        "image_size": run.model.preprocess.input_size,
    }
    test = None
    if run.data.test is not None:
        start = time.perf_counter()
        test = score(run, run.model, run.data.test, tta=c.tta)
        timings["test_seconds"] = round(time.perf_counter() - start, 2)
        report["test"] = classification_report(test.targets, test.preds, run.data.classes)
        report["test"]["loss"] = test.loss
        t = report["test"]
        run.log(
            f"test: accuracy {t['accuracy']:.4f}, balanced {t['balanced_accuracy']:.4f}, "
            f"macro-F1 {t['macro_f1']:.4f} on {t['num_samples']} images"
        )
    report["calibration"] = _calibrate(run, state, best_file, test, timings)
    full = [r["images_per_s"] for r in state.history if r["phase"] == "full" and r["images_per_s"]]
    if full:
        timings["full_images_per_s"] = round(sum(full) / len(full), 2)
    files: dict[str, str] = {}
    if run.ctx.is_main:
        files = _plots(run, state, report)
        page = _report_page(run, timings, started)
        if page is not None:
            files["report_html"] = str(page)
        if run.writer is not None:
            run.writer.close()
    return FinetuneResult(run.run_dir, report, state.history, timings, best_file, files)


def _last_is_best(state: RunState) -> bool:
    row = state.history[-1] if state.history else {}
    return bool(row) and state.best_epoch == f"{row['phase']} {row['epoch']}"


def _calibrate(
    run: Run,
    state: RunState,
    weights_file: Path,
    test: EvalResult | None,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Fit the temperature of the model's own logits (one view: what predict and exported
    models serve) on the validation split, else on up to ``CALIBRATION_SAMPLES`` training
    images in eval mode; store it in ``weights_file``'s metadata (and ``last``'s when the best
    epoch was the last) and save the predictions the report draws from. Every rank evaluates
    (the passes are collective); the main one writes."""
    from effnet.report import expected_calibration_error, fit_temperature, save_predictions
    from effnet.report.run import calibration_sample

    start = time.perf_counter()
    name, part = ("val", run.data.val) if run.data.val is not None else ("train", None)
    if part is None:
        part = calibration_sample(run.data.train)
    held = score(run, run.model, part)  # no TTA: the temperature divides one view's logits
    temperature = fit_temperature(held.logits, held.targets, seen=name == "train")
    info: dict[str, Any] = {"temperature": temperature, "split": name, "images": len(part)}
    if test is not None:
        own = test.logits if test.view_logits is None else test.view_logits
        info["test_ece"] = expected_calibration_error(own.softmax(1), test.targets)
        info["test_ece_calibrated"] = expected_calibration_error(
            (own / temperature).softmax(1), test.targets
        )
    if run.ctx.is_main:
        store_temperature(weights_file, temperature)
        last = run.run_dir / "last.safetensors"
        if weights_file != last and _last_is_best(state):  # the same weights: the same T
            store_temperature(last, temperature)
        classes = run.data.classes
        paths = [p for p, _ in part.samples]
        save_predictions(run.run_dir, name, paths, held.targets, held.logits, classes)
        if test is not None and run.data.test is not None:
            paths = [p for p, _ in run.data.test.samples]
            save_predictions(
                run.run_dir, "test", paths, test.targets, test.logits, classes, test.view_logits
            )
    ece = (
        f"; test ECE {info['test_ece']:.4f} -> {info['test_ece_calibrated']:.4f}"
        if "test_ece" in info
        else ""
    )
    run.log(f"calibration: temperature {temperature:.3f} fitted on {len(part)} {name} images{ece}")
    if name == "train":
        run.log(
            "  (no validation split: the temperature was fitted on images the network trained "
            "on, where it is more accurate than on new ones, so it may only soften (T >= 1); "
            "hold out a validation split, e.g. --split 65/10/25, to calibrate new images)"
        )
    timings["calibration_seconds"] = round(time.perf_counter() - start, 2)
    return info


def _report_page(run: Run, timings: dict[str, float], started: float) -> Path | None:
    """Write report.html from the predictions just saved; record its cost in ``timings``
    (``report_fraction``: calibration and page together, over the run's wall time)."""
    from effnet.report import write_report

    start = time.perf_counter()
    try:
        path = write_report(
            run.run_dir, model=run.model, wall_seconds=start - started, recompute=False
        )
    except ImportError as exc:  # the optional report dependencies (matplotlib, captum)
        run.log(f"(no report.html: {exc}; pip install 'effnet[report]')")
        return None
    end = time.perf_counter()
    timings["report_seconds"] = round(end - start, 2)
    spent = timings["report_seconds"] + timings.get("calibration_seconds", 0.0)
    timings["report_fraction"] = round(spent / max(end - started, 1e-9), 4)
    run.log(f"report: {path}")
    return path


def _plots(run: Run, state: RunState, report: dict[str, Any]) -> dict[str, str]:
    files = {
        "report": str(run.run_dir / "report.json"),
        "metrics": str(run.run_dir / "metrics.jsonl"),
    }
    try:
        from effnet.train.plots import plot_confusion, plot_curves

        if state.history:
            files["curves"] = str(plot_curves(state.history, run.run_dir / "curves.png"))
        if "test" in report:
            matrix = report["test"]["confusion_matrix"]
            path = run.run_dir / "confusion.png"
            files["confusion"] = str(plot_confusion(matrix, run.data.classes, path))
    except ImportError as exc:
        run.log(f"(no plots: {exc})")
    return files
