"""Progressive learning vs fixed-size training: same data, same epochs, same recipe otherwise.

ELPV (binary labels by default), ImageNet-pretrained EfficientNet-Lite0, stratified 75/25 split.
The fixed run is the recipe as it is, every epoch at the final size; the progressive run is the
same recipe with the image size growing over four stages, as EfficientNetV2 does (add
regularisation to the schedule with ``--regularise``, e.g. ``dropout=0.1:0.3``).

    python benchmarks/progressive_elpv.py --mode 4class
    python benchmarks/progressive_elpv.py --mode binary --epochs 8 --size 224
    python benchmarks/progressive_elpv.py --mode 4class --reuse-fixed RUN_DIR/4class-pretrained

``--reuse-fixed RUN_DIR`` takes the fixed arm from a finished run (e.g. the one
``benchmarks/finetune_elpv.py`` just made) instead of training it again, after checking that the
run's saved config is exactly the fixed arm's (only its output directory may differ).

Prints JSON: accuracy and wall time of each, the accuracy difference and the time ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import yaml

from effnet.train import FinetuneConfig, finetune, load_config, merge_config

ROOT = Path(__file__).resolve().parents[1]


def finished_run(run_dir: Path, expected: FinetuneConfig) -> dict:
    """The fixed arm's numbers from a finished run whose saved config is exactly ``expected``."""
    saved = load_config(run_dir / "config.yaml", FinetuneConfig())
    ignore = {"out", "progress", "extra", "workers", "threads"}  # where, not what, it trains
    differ = {
        key: (value, getattr(saved, key))
        for key, value in dataclasses.asdict(expected).items()
        if key not in ignore and getattr(saved, key) != value
    }
    if differ:
        raise SystemExit(
            f"{run_dir} is not the fixed arm of this benchmark; differing keys "
            f"(expected, found): {differ}"
        )
    report = json.loads((run_dir / "report.json").read_text())
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "test_accuracy": round(report["test"]["accuracy"], 4),
        "balanced_accuracy": round(report["test"]["balanced_accuracy"], 4),
        "wall_seconds": report["timings"]["wall_seconds"],
        "full_seconds": report["timings"]["full_seconds"],
        "sizes": [
            row.get("size", expected.image_size) for row in history if row["phase"] == "full"
        ],
        "reused_run": str(run_dir),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "elpv-lite0.yaml")
    parser.add_argument("--mode", default="binary")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=224, help="final (and fixed-run) image size")
    parser.add_argument("--start-size", type=int, default=128)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument(
        "--regularise", default="", help="extra schedule terms, e.g. dropout=0.1:0.3"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-progressive")
    parser.add_argument("--reuse-fixed", type=Path, metavar="RUN_DIR", help="see the docstring")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key for both arms (YAML value syntax)",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    base = load_config(args.recipe, FinetuneConfig())
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key.replace("-", "_")] = yaml.safe_load(value)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    schedule = f"stages={args.stages},size={args.start_size}:{args.size}"
    if args.regularise:
        schedule += "," + args.regularise
    runs = {}
    variants: dict[str, dict] = {
        "fixed": {"progressive": None},
        "progressive": {"progressive": schedule},
    }
    for name, extra in variants.items():
        config = merge_config(
            base,
            {
                "label_mode": args.mode,
                "epochs": args.epochs,
                "image_size": args.size,
                "progress": False,
                "out": str(args.out / f"{stamp}-{name}"),
                **overrides,
                **extra,
            },
        )
        if name == "fixed" and args.reuse_fixed:
            runs[name] = finished_run(args.reuse_fixed, config)
            print(json.dumps({name: runs[name]}), file=sys.stderr, flush=True)
            continue
        start = time.perf_counter()
        result = finetune(config)
        runs[name] = {
            "test_accuracy": round(result.report["test"]["accuracy"], 4),
            "balanced_accuracy": round(result.report["test"]["balanced_accuracy"], 4),
            "wall_seconds": round(time.perf_counter() - start, 1),
            "full_seconds": result.timings.get("full_seconds"),
            "sizes": [
                row.get("size", args.size) for row in result.history if row["phase"] == "full"
            ],
        }
        print(json.dumps({name: runs[name]}), file=sys.stderr, flush=True)
    fixed, prog = runs["fixed"], runs["progressive"]
    summary = {
        "benchmark": "progressive_elpv",
        "label_mode": args.mode,
        "epochs": args.epochs,
        "schedule": schedule,
        "recipe": str(
            args.recipe.relative_to(ROOT) if args.recipe.is_relative_to(ROOT) else args.recipe
        ),
        "overrides": overrides,
        "fixed": fixed,
        "progressive": prog,
        "accuracy_difference_points": round(
            100 * (prog["test_accuracy"] - fixed["test_accuracy"]), 2
        ),
        "phase2_time_ratio": round(prog["full_seconds"] / fixed["full_seconds"], 3),
        "meets_target": prog["test_accuracy"] >= fixed["test_accuracy"] - 0.01
        and prog["full_seconds"] < 0.85 * fixed["full_seconds"],
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
