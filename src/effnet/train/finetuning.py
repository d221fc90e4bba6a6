"""The two-phase transfer-learning workflow (seed, section 6.1) as one function.

1. Load pretrained weights; replace the head with one sized for the data.
2. Phase 1 ("head"): freeze the backbone (BatchNorm statistics too) and train the head at ~1e-3.
   Without random augmentation the frozen backbone's features never change, so they are
   computed once and the head trains on them in seconds.
3. Phase 2 ("full"): unfreeze everything; AdamW at ~1e-4 with warmup and cosine decay.
4. Evaluate the best checkpoint on the held-out test split; write report, curves and plots.

Every epoch ends with an atomic checkpoint; ``resume=True`` continues a killed run and, because
every epoch reseeds from (seed, phase, epoch), finishes with the same result as an uninterrupted
run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from effnet.data import load_source
from effnet.train.checkpoint import load_training_state
from effnet.train.config import FinetuneConfig, load_config, save_config
from effnet.train.distributed import init_distributed
from effnet.train.loaders import CachedImages, num_workers
from effnet.train.loop import evaluate, resolve_amp
from effnet.train.metrics import classification_report
from effnet.train.phases import phase_full, phase_head, recalibrate_bn
from effnet.train.run import Run, build_model, eval_loader, fractions_of

__all__ = ["FinetuneResult", "finetune", "train"]


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


def _prepare_run(config: FinetuneConfig, resume: bool) -> tuple[Run, dict[str, Any]]:
    ctx = init_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = config.run_dir
    state: dict[str, Any] = {}
    if resume:
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(
                f"--resume: {run_dir} has no config.yaml; is it a run directory?"
            )
        config = load_config(saved)
        state = load_training_state(run_dir)
    elif (run_dir / "last.train.pt").exists() and ctx.is_main:
        raise FileExistsError(
            f"{run_dir} already holds a run; continue it with --resume, or choose another --out"
        )
    torch.manual_seed(config.seed)
    data = load_source(
        config.data,
        label_mode=config.label_mode,
        fractions=fractions_of(config.split),
        seed=config.seed,
    )
    model = build_model(config, data)
    if state:
        from effnet.weights.io import read_state_dict

        weights, _ = read_state_dict(run_dir / "last.safetensors")
        model.load_state_dict(weights)
    model.to(ctx.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    loader = CachedImages() if config.cache_images else None
    if loader is not None and num_workers(config.workers) > 0:
        parts = (data.train, data.val, data.test)
        loader.prefill([p for part in parts if part for p, _ in part.samples], config.progress)
    run = Run(config, ctx, run_dir, data, model, resolve_amp(config.amp, ctx.device), loader)
    run.history = list(state.get("history", []))
    run.best_score = float(state.get("best_score", -math.inf))
    run.best_epoch = str(state.get("best_epoch", ""))
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        (run_dir / "data.json").write_text(json.dumps(data.to_dict(), indent=1) + "\n")
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            run.writer = SummaryWriter(str(run_dir / "tensorboard"))
    return run, state


def finetune(
    config: FinetuneConfig,
    resume: bool = False,
    on_step: Callable[[], None] | None = None,
) -> FinetuneResult:
    """Run (or, with ``resume``, continue) the two-phase fine-tuning described by ``config``.

    ``on_step`` is called after every optimizer step of phase 2 (progress hooks, tests).
    """
    wall = time.perf_counter()
    run, state = _prepare_run(config, resume)
    run.on_step = on_step
    c = run.config
    d = run.data
    run.log(
        f"effnet finetune: {c.model} ({c.weights} weights) on {c.data}: {d.num_classes} classes, "
        f"train {len(d.train)}, val {len(d.val) if d.val else 0}, test "
        f"{len(d.test) if d.test else 0}, {d.num_skipped} unreadable skipped; "
        f"{run.model.preprocess.input_size}px; run dir {run.run_dir}"
    )
    phase, done = state.get("phase"), int(state.get("epoch", 0))
    if c.bn_recalibrate and not state:
        recalibrate_bn(run)
    if c.head_epochs and not (phase == "full" or (phase == "head" and done >= c.head_epochs)):
        phase_head(run, state, done if phase == "head" else 0)
    if c.epochs:
        phase_full(run, state, done if phase == "full" else 0)
    result = _finish(run)
    result.timings["wall_seconds"] = round(time.perf_counter() - wall, 2)
    if run.ctx.is_main:
        _write_json(run.run_dir / "report.json", {**result.report, "timings": result.timings})
    return result


def _finish(run: Run) -> FinetuneResult:
    """Reload the best weights (by validation accuracy; the last ones without a val split),
    evaluate on the test split, write the report and the plots."""
    c, ctx = run.config, run.ctx
    best = run.run_dir / "best.safetensors"
    if run.data.val is not None and best.is_file():
        from effnet.weights.io import read_state_dict

        weights, _ = read_state_dict(best)
        run.model.load_state_dict(weights)
    report: dict[str, Any] = {
        "model": c.model,
        "weights": c.weights,
        "data": run.data.to_dict() | {"split": None},
        "num_skipped_images": run.data.num_skipped,
        "best_epoch": run.best_epoch or "last",
        "image_size": run.model.preprocess.input_size,
    }
    files: dict[str, str] = {}
    if run.data.test is not None:
        test = evaluate(
            run.model,
            eval_loader(run, run.data.test),
            ctx,
            amp_dtype=run.amp_dtype,
            channels_last=c.channels_last,
            tta=c.tta,
            tta_vflip=c.tta and c.vflip,
        )
        report["test"] = classification_report(test.targets, test.preds, run.data.classes)
        report["test"]["loss"] = test.loss
        run.log(
            f"test: accuracy {report['test']['accuracy']:.4f}, balanced "
            f"{report['test']['balanced_accuracy']:.4f}, macro-F1 {report['test']['macro_f1']:.4f}"
            f" on {report['test']['num_samples']} images"
        )
    timings = dict(run.timings)
    epochs = [r for r in run.history if r.get("images_per_s")]
    if epochs:
        timings["full_images_per_s"] = round(
            sum(r["images_per_s"] for r in epochs if r["phase"] == "full")
            / max(1, sum(1 for r in epochs if r["phase"] == "full")),
            2,
        )
    if ctx.is_main:
        files = _plots(run, report)
        if run.writer is not None:
            run.writer.close()
    best_file = best if best.is_file() else run.run_dir / "last.safetensors"
    return FinetuneResult(run.run_dir, report, run.history, timings, best_file, files)


def _plots(run: Run, report: dict[str, Any]) -> dict[str, str]:
    files = {
        "report": str(run.run_dir / "report.json"),
        "metrics": str(run.run_dir / "metrics.jsonl"),
    }
    try:
        from effnet.train.plots import plot_confusion, plot_curves

        if run.history:
            files["curves"] = str(plot_curves(run.history, run.run_dir / "curves.png"))
        if "test" in report:
            files["confusion"] = str(
                plot_confusion(
                    report["test"]["confusion_matrix"],
                    run.data.classes,
                    run.run_dir / "confusion.png",
                )
            )
    except ImportError as exc:
        run.log(f"(no plots: {exc})")
    return files


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def train(
    config: FinetuneConfig,
    resume: bool = False,
    on_step: Callable[[], None] | None = None,
) -> FinetuneResult:
    """Train from scratch: one phase, the same loop, checkpoints and reports as fine-tuning.

    Pass a :class:`~effnet.train.config.TrainConfig` (random init, SGD, longer schedule); under
    ``torchrun`` every process runs this and they form one job.
    """
    return finetune(config, resume=resume, on_step=on_step)
