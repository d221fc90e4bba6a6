"""int8 vs fp32 on a fine-tuned ELPV checkpoint: held-out accuracy drop and speed-up, one run.

    python benchmarks/int8_elpv.py --checkpoint runs/elpv/best.safetensors
    python benchmarks/int8_elpv.py --checkpoint runs/elpv --runtime onnxruntime,openvino

The checkpoint's own preprocessing (resolution, mean/std) is used. Calibration images come from
the ELPV *train* split and accuracy is measured on the *test* split of the split the run itself
used (its ``data.json`` beside the checkpoint, file for file, label mode included; without one
the default stratified 70/15/15 split, seed 0, with ``--label-mode``), so no test image is seen
during calibration: the same loaders as ``effnet export --int8`` (``effnet.export.int8_loaders``).
Target (issue 5): drop < 1 point, int8 >= 2x the fp32 ONNX throughput. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _speed(fp32: str, int8: str, runtime: str, res: int, chans: int, threads: int) -> dict:
    from effnet.bench.timing import measure_interleaved
    from effnet.export.artifact import onnx_runner

    out: dict[str, Any] = {}
    for batch in (32, 1):
        x = np.random.default_rng(0).standard_normal((batch, chans, res, res)).astype(np.float32)
        # the yardstick: the fp32 ONNX model in ONNX Runtime
        f, q = onnx_runner(fp32, "onnxruntime", threads), onnx_runner(int8, runtime, threads)
        t = measure_interleaved(
            {"fp32": lambda f=f, x=x: f(x), "int8": lambda q=q, x=x: q(x)},
            batch=batch,
            warmup=3,
            repeats=10 if batch > 1 else 40,
        )
        out[f"batch{batch}"] = {
            "fp32_onnxruntime_images_per_s": round(t["fp32"].images_per_s, 1),
            "int8_images_per_s": round(t["int8"].images_per_s, 1),
            "int8_speedup": round(t["int8"].images_per_s / t["fp32"].images_per_s, 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="ELPV checkpoint file or run folder")
    parser.add_argument("--model", help="variant, for a foreign checkpoint without metadata")
    parser.add_argument(
        "--label-mode", choices=("binary", "4class"), help="default: the run's, else 4class"
    )
    parser.add_argument("--runtime", default="onnxruntime", help="onnxruntime,openvino")
    parser.add_argument("--calib-images", type=int, default=512)
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("int8_elpv"), help="output folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # a script: the whole process is the benchmark

    from effnet.data import recorded_splits
    from effnet.export import (
        Int8AccuracyError,
        Int8Options,
        export_onnx,
        int8_loaders,
        quantize_int8,
    )
    from effnet.weights import load_checkpoint

    model, _ = load_checkpoint(args.checkpoint, model=args.model)
    model.eval()
    record = recorded_splits(args.checkpoint, "elpv", args.label_mode)
    options = Int8Options("elpv", args.label_mode or (record.label_mode if record else None))
    calib, held_out = int8_loaders(model, options, args.checkpoint)
    args.out.mkdir(parents=True, exist_ok=True)
    fp32 = args.out / "model.fp32.onnx"
    export_onnx(model, fp32, dynamic_batch=True)
    res = model.preprocess.input_size
    results: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "architecture": model.spec.name,
        "label_mode": options.label_mode or "4class",
        "split": "the run's own (data.json)" if record is not None else "default 70/15/15",
        "resolution": res,
        "train_images": len(calib.dataset),
        "test_images": len(held_out.dataset),
        "runtimes": {},
    }
    for runtime in [r.strip() for r in args.runtime.split(",") if r.strip()]:
        start = time.perf_counter()
        entry: dict[str, Any] = {}
        try:
            report = quantize_int8(
                fp32,
                calib,
                held_out,
                out=args.out / f"model.int8.{runtime}.onnx",
                max_drop=args.max_drop,
                calibration_images=args.calib_images,
                runtime=runtime,
                threads=args.threads,
            )
            entry["int8"] = report.to_dict()
            entry["speed"] = _speed(
                str(fp32), str(report.path), runtime, res, model.in_chans, args.threads
            )
        except Int8AccuracyError as exc:
            entry["int8"] = exc.report.to_dict()
            entry["refused"] = str(exc)
        r = entry["int8"]
        entry["target_drop_lt_1pt"] = {
            "measured_points": round(r["drop_points"], 3),
            "met": r["drop_points"] < 1.0,
        }
        if "speed" in entry:
            s = entry["speed"]["batch32"]["int8_speedup"]
            entry["target_2x_fp32"] = {"measured": s, "met": s >= 2.0}
        entry["seconds"] = round(time.perf_counter() - start, 1)
        results["runtimes"][runtime] = entry
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
