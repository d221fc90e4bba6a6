"""The two-phase transfer-learning workflow (seed, section 6.1) as one function.

1. Load pretrained weights; replace the head with one sized for the data.
2. Phase 1 ("head"): freeze the backbone (BatchNorm statistics too) and train the head at ~1e-3.
   Without random augmentation the frozen backbone's features never change, so they are
   computed once and the head trains on them in seconds.
3. Phase 2 ("full"): unfreeze everything; AdamW at ~1e-4 with warmup and cosine decay.
4. Evaluate the best checkpoint on the held-out test split; write report, curves and plots.

Every epoch ends with an atomic checkpoint; :func:`resume` continues a killed run and, because
every epoch reseeds from (seed, phase, epoch), finishes with the same result as an uninterrupted
run.
"""

from __future__ import annotations

import dataclasses
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
from effnet.host import torch_threads
from effnet.train.checkpoint import (
    RunState,
    check_new_run_dir,
    load_best,
    load_last,
    load_run_state,
)
from effnet.train.config import (
    FinetuneConfig,
    field_metadata,
    load_config,
    merge_config,
    save_config,
)
from effnet.train.distributed import init_distributed
from effnet.train.loop import resolve_amp
from effnet.train.metrics import classification_report
from effnet.train.phases import phase_full, phase_head, recalibrate_bn
from effnet.train.run import Run, build_model, score

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


def finetune(config: FinetuneConfig, on_step: Callable[[], None] | None = None) -> FinetuneResult:
    """Run the two-phase fine-tuning described by ``config`` in a new run directory.

    ``on_step`` is called after every optimizer step of phase 2 (progress hooks, tests).
    """
    return _run(config, RunState(), on_step)


def train(config: FinetuneConfig, on_step: Callable[[], None] | None = None) -> FinetuneResult:
    """Train from scratch: one phase, the same loop, checkpoints and reports as fine-tuning.

    Pass a :class:`~effnet.train.config.TrainConfig` (random init, SGD, longer schedule); under
    ``torchrun`` every process runs this and they form one job.
    """
    return _run(config, RunState(), on_step)


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
    """
    path = Path(run_dir)
    config = resume_config(path, **overrides)
    return _run(config, load_run_state(path), on_step)


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
    config: FinetuneConfig, state: RunState, on_step: Callable[[], None] | None
) -> FinetuneResult:
    wall = time.perf_counter()
    with torch_threads(config.threads):
        run = _prepare_run(config, state)
        c, timings = run.config, {}
        if c.bn_recalibrate and state.phase == "":
            timings["bn_recalibrate_seconds"] = recalibrate_bn(run)
        if c.head_epochs and state.done("head", c.head_epochs) < c.head_epochs:
            timings.update(phase_head(run, state))
        if c.epochs:
            timings.update(phase_full(run, state, on_step))
        result = _finish(run, state, timings)
    result.timings["wall_seconds"] = round(time.perf_counter() - wall, 2)
    if run.ctx.is_main:
        write_json(run.run_dir / "report.json", {**result.report, "timings": result.timings})
    return result


def _prepare_run(config: FinetuneConfig, state: RunState) -> Run:
    ctx = init_distributed(config.device)
    run_dir = config.run_dir
    if state.phase == "" and ctx.is_main:
        check_new_run_dir(run_dir)
    torch.manual_seed(config.seed)
    data = load_source(
        config.data,
        label_mode=config.label_mode,
        fractions=SplitFractions.parse(config.split),
        seed=config.seed,
        keep_images=config.cache_images,  # decoded once, here, before any loader worker forks
        progress=config.progress and ctx.is_main,
    )
    model = build_model(config, data)
    if state.phase:
        load_last(run_dir, model)
    model.to(ctx.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    writer = None
    if ctx.is_main:
        save_config(config, run_dir / "config.yaml")
        write_data_record(run_dir, data)
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tensorboard"))
    amp = resolve_amp(config.amp, ctx.device)
    run = Run(config, ctx, run_dir, data, model, amp, data.images, writer)
    d = data
    run.log(
        f"effnet finetune: {config.model} ({config.weights} weights) on {config.data}: "
        f"{d.num_classes} classes, train {len(d.train)}, val {len(d.val) if d.val else 0}, test "
        f"{len(d.test) if d.test else 0}, {d.num_skipped} unreadable skipped; "
        f"{model.preprocess.input_size}px; run dir {run_dir}"
    )
    return run


def _finish(run: Run, state: RunState, timings: dict[str, float]) -> FinetuneResult:
    """Reload the best weights (by validation accuracy; the last ones without a val split),
    evaluate on the test split, write the report and the plots."""
    c = run.config
    run.ctx.barrier()  # under torchrun: every rank reads what the main process wrote
    best_file = load_best(run.run_dir, run.model)
    report: dict[str, Any] = {
        "model": c.model,
        "weights": c.weights,
        "data": run.data.to_dict() | {"split": None},
        "num_skipped_images": run.data.num_skipped,
        "best_epoch": state.best_epoch or "last",
        "image_size": run.model.preprocess.input_size,
    }
    if run.data.test is not None:
        test = score(run, run.model, run.data.test, tta=c.tta)
        report["test"] = classification_report(test.targets, test.preds, run.data.classes)
        report["test"]["loss"] = test.loss
        t = report["test"]
        run.log(
            f"test: accuracy {t['accuracy']:.4f}, balanced {t['balanced_accuracy']:.4f}, "
            f"macro-F1 {t['macro_f1']:.4f} on {t['num_samples']} images"
        )
    full = [r["images_per_s"] for r in state.history if r["phase"] == "full" and r["images_per_s"]]
    if full:
        timings["full_images_per_s"] = round(sum(full) / len(full), 2)
    files: dict[str, str] = {}
    if run.ctx.is_main:
        files = _plots(run, state, report)
        if run.writer is not None:
            run.writer.close()
    return FinetuneResult(run.run_dir, report, state.history, timings, best_file, files)


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
