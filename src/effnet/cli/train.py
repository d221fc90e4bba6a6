"""``effnet finetune`` and ``effnet evaluate``.

Every field of :class:`~effnet.train.FinetuneConfig` is a flag (``--head-epochs``,
``--label-mode``, ...), its help taken from the field's comment. Precedence: defaults, then
``--config FILE``, then flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import typing
from typing import Any

from effnet.cli.output import print_json
from effnet.train import FinetuneConfig, finetune, load_config, merge_config
from effnet.train.config import TrainConfig
from effnet.train.evaluation import SPLITS, evaluate_checkpoint
from effnet.train.finetuning import train

_SKIP = {"extra"}


def _field_help(cls: type) -> dict[str, str]:
    """Trailing ``# comments`` of the dataclass's fields, as help text."""
    helps: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        for line in inspect.getsource(klass).splitlines():  # subclasses' comments win
            match = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
            if match:
                helps[match.group(1)] = match.group(2)
    return helps


def add_config_flags(parser: argparse.ArgumentParser, cls: type = FinetuneConfig) -> None:
    """One flag per config field; defaults are left to the dataclass (``None`` = not given)."""
    helps = _field_help(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in _SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = str(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        text = helps.get(f.name, "")
        if "default" not in text:  # a comment that explains its default keeps its own words
            text = f"{text} (default: {default})"
        if "bool" in hint:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=text
            )
            continue
        kind: Any = str
        if "int" in hint and "float" not in hint:
            kind = int
        elif "float" in hint:
            kind = float
        parser.add_argument(flag, type=kind, default=None, dest=f.name, help=text)


def config_from_args(args: argparse.Namespace, cls: type = FinetuneConfig) -> Any:
    base = load_config(args.config, cls()) if getattr(args, "config", None) else cls()
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if f.name not in _SKIP and getattr(args, f.name, None) is not None
    }
    return merge_config(base, given)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="two-phase transfer learning on your images (or the embedded ELPV dataset)",
        description="Phase 1 trains a new head on the frozen pretrained backbone; phase 2 "
        "fine-tunes everything with a small, decaying learning rate. Writes checkpoints, "
        "metrics, a test report and plots to the run directory.",
    )
    p.add_argument("--config", help="YAML file of config keys (flags override it)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    add_config_flags(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "train",
        help="train from scratch (one phase; works under torchrun for multi-process/multi-node)",
        description="Train an EfficientNet from random initialisation with the paper-style "
        "recipe options (SGD/RMSProp/AdamW, warmup + cosine or step decay, EMA, label smoothing, "
        "stochastic depth, progressive learning). Under `torchrun --nproc_per_node=N -m effnet "
        "train ...` every process joins one job; --batch-size is per process.",
    )
    p.add_argument("--config", help="YAML file of config keys, e.g. recipes/b0-imagenet.yaml")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    add_config_flags(p, TrainConfig)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="the test report of a checkpoint on any labelled data")
    p.add_argument("checkpoint", help="an effnet checkpoint file or a fine-tuning run directory")
    p.add_argument("--data", required=True, help="folder, split folders, CSV, or elpv")
    p.add_argument("--label-mode", help="elpv only: 4class | binary")
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="auto",
        help="auto: the run's held-out test split when --data is its data, else all",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--tta", action="store_true", help="average over horizontal flips")
    p.add_argument("--out", help="folder for eval_report.json and eval_confusion.png")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=cmd_evaluate)


def cmd_finetune(args: argparse.Namespace) -> int:
    if args.resume:
        config = FinetuneConfig(out=args.resume)
        result = finetune(config, resume=True)
    else:
        result = finetune(config_from_args(args))
    if not _is_main():
        return 0
    print(f"\nrun directory: {result.run_dir}")
    for name, path in result.files.items():
        print(f"  {name:>9}: {path}")
    print(f"  checkpoint: {result.best_checkpoint}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        result = train(TrainConfig(out=args.resume), resume=True)
    else:
        result = train(config_from_args(args, TrainConfig))
    if result.run_dir and _is_main():
        print(f"\nrun directory: {result.run_dir}")
        for name, path in result.files.items():
            print(f"  {name:>9}: {path}")
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def cmd_evaluate(args: argparse.Namespace) -> int:
    report = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        label_mode=args.label_mode,
        split=args.split,
        batch_size=args.batch_size,
        tta=args.tta,
        out=args.out,
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print_json(report)
        return 0
    print(
        f"{report['data']} ({report['split']}, {report['num_samples']} images): accuracy "
        f"{report['accuracy']:.4f}, balanced accuracy {report['balanced_accuracy']:.4f}, "
        f"macro-F1 {report['macro_f1']:.4f}"
    )
    for name, row in report["per_class"].items():
        print(
            f"  {name:>12}: precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
            f"support {row['support']}"
        )
    if args.out:
        print(f"wrote {args.out}/eval_report.json and eval_confusion.png")
    return 0
