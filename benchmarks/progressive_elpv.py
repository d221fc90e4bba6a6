"""Progressive learning vs fixed-size training: same data, same epochs, same recipe otherwise.

ELPV (binary labels by default), ImageNet-pretrained EfficientNet-Lite0, stratified 75/25 split.
The fixed run trains every epoch at the final size; the progressive run grows the image size
(and RandAugment strength and dropout) over four stages, as EfficientNetV2 does.

    python benchmarks/progressive_elpv.py
    python benchmarks/progressive_elpv.py --mode 4class --epochs 8 --size 224

Prints JSON: accuracy and wall time of each, the accuracy difference and the time ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from effnet.train import FinetuneConfig, finetune, load_config, merge_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "elpv-lite0.yaml")
    parser.add_argument("--mode", default="binary")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=224, help="final (and fixed-run) image size")
    parser.add_argument("--start-size", type=int, default=128)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-progressive")
    args = parser.parse_args()
    torch.set_num_threads(2)
    base = load_config(args.recipe, FinetuneConfig())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    schedule = (
        f"stages={args.stages},size={args.start_size}:{args.size},randaug=5:9,dropout=0.1:0.2"
    )
    runs = {}
    variants = {
        "fixed": {"augment": "medium", "magnitude": 9},
        "progressive": {"augment": "medium", "progressive": schedule},
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
                **extra,
            },
        )
        start = time.perf_counter()
        result = finetune(config)
        runs[name] = {
            "test_accuracy": round(result.report["test"]["accuracy"], 4),
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
