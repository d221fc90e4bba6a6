"""``effnet finetune``, ``effnet train`` and ``effnet evaluate``.

Every field of :class:`~effnet.train.FinetuneConfig` is a flag (``--head-epochs``,
``--label-mode``, ...). Precedence: defaults, then ``--config FILE``, then flags. With
``--resume RUN_DIR`` the flags given are the overrides :func:`effnet.train.resume` accepts.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from effnet.cli.flags import add_command, add_flags, call, given
from effnet.cli.output import print_json, show_progress
from effnet.errors import ConfigError
from effnet.report.text import evaluation_lines
from effnet.train.config import OUTPUT, FinetuneConfig, TrainConfig, load_config, merge_config
from effnet.train.evaluation import SPLITS, evaluate_checkpoint
from effnet.train.finetuning import FinetuneResult, finetune, resume, train

_SKIP = ("extra",)


def add_commands(sub: argparse._SubParsersAction) -> None:
    for handler, cls in ((cmd_finetune, FinetuneConfig), (cmd_train, TrainConfig)):
        p = add_command(sub, handler)
        p.add_argument("--config", help="YAML file of config keys (flags override it)")
        p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
        p.add_argument("--overwrite", action="store_true", help="start over in a run directory "
                       "that holds another run (its files are deleted); without it such a "
                       "directory is refused")  # fmt: skip
        groups = add_flags(p, cls, _SKIP)
        groups[OUTPUT].add_argument(
            "--json", action="store_true", help="print a JSON summary at the end (run dir, test "
            "accuracy and balanced accuracy, files, timings); the log stays on stderr"
        )  # fmt: skip
    p = add_command(sub, cmd_evaluate)
    p.add_argument("checkpoint", help="an effnet checkpoint file or a fine-tuning run directory")
    p.add_argument("--data", required=True, help="folder, split folders, CSV, or elpv")
    p.add_argument("--label-mode", help="elpv only: 4class | binary (default: the run's)")
    p.add_argument(
        "--model", help="the network of a state-dict file without effnet metadata (a model name)"
    )
    p.add_argument("--split", choices=SPLITS, default="auto", help="auto: the run's test split")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--tta", action="store_true", help="average over horizontal flips")
    p.add_argument("--out", help="folder for eval_report.json and eval_confusion.png")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")


def cmd_finetune(args: argparse.Namespace) -> int:
    """Two-phase transfer learning on your images (or the embedded ELPV dataset).

    Phase 1 trains a new head on the frozen pretrained backbone; phase 2 fine-tunes everything
    with a small, decaying learning rate. Writes checkpoints, metrics, a test report and plots to
    the run directory. With --resume RUN_DIR the flags given are the changes a resume allows
    (how the run executes, --early-stop, --tta, a longer --epochs); others are refused.
    Flags from timm's train.py work where they mean the same: -b, -j, --model-ema, --aa,
    --reprob, --mixup, --cutmix, --layer-decay, --compile, --grad-checkpointing.

    Examples:
      effnet finetune --data path/to/class_folders --out runs/mine
      effnet finetune --data elpv --label-mode binary -b 64 --aa rand-m9-mstd0.5 --model-ema
      effnet finetune --config recipes/elpv-lite0.yaml --epochs 4 --mlflow --json
    """
    return _run(args, FinetuneConfig, finetune)


def cmd_train(args: argparse.Namespace) -> int:
    """Train from scratch (one phase; works under torchrun for multi-process/multi-node).

    Train an EfficientNet from random initialisation with the paper-style recipe options
    (SGD/RMSProp/AdamW, warmup + cosine or step decay, EMA, label smoothing, stochastic depth,
    progressive learning). Under `torchrun --nproc_per_node=N -m effnet train ...` every process
    joins one job; --batch-size is per process.

    Examples:
      effnet train --config recipes/b0-imagenet.yaml --data /data/imagenet
      effnet train --data my_images --model efficientnet_b0 --epochs 30 -b 64 --compile
      torchrun --nproc_per_node=4 -m effnet train --config recipes/v2s-imagenet.yaml --data /data
    """
    return _run(args, TrainConfig, train)


def _run(args: argparse.Namespace, cls: type, workflow: Callable[..., FinetuneResult]) -> int:
    flags = given(args, cls, _SKIP)
    if args.json:
        flags.setdefault("progress", False)
    if args.resume:
        if args.config:
            raise ConfigError("--resume continues a run with its saved config: drop --config")
        if args.overwrite:
            raise ConfigError("--overwrite starts a run over, --resume continues one: pick one")
        result = resume(args.resume, **flags)
    else:
        base = load_config(args.config, cls()) if args.config else cls()
        config = merge_config(base, flags)
        result = workflow(config, overwrite=args.overwrite, config_file=args.config)
    if os.environ.get("RANK", "0") != "0":
        return 0
    if args.json:
        return print_json(result.summary())
    print(f"\nrun directory: {result.run_dir}")
    for name, path in result.files.items():
        print(f"  {name:>9}: {path}")
    print(f"  checkpoint: {result.best_checkpoint}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """The test report of a checkpoint on any labelled data.

    --split auto evaluates on the run's own held-out test split (from its data.json) when --data
    is the data it trained on, else on every image.

    Examples:
      effnet evaluate runs/mine --data path/to/class_folders
      effnet evaluate runs/mine/best.safetensors --data more_images.csv --split all --json
    """
    report = call(evaluate_checkpoint, args, progress=show_progress(args))
    if args.json:
        return print_json(report)
    print("\n".join(evaluation_lines(report)))
    if args.out:
        print(f"wrote {args.out}/eval_report.json, eval_confusion.png and report.html")
    return 0
