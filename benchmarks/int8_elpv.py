"""int8 vs fp32 on a fine-tuned ELPV checkpoint: held-out accuracy drop and speed-up, one run.

    python benchmarks/int8_elpv.py --checkpoint runs/elpv/best.safetensors
    python benchmarks/int8_elpv.py --checkpoint runs/elpv --runtime onnxruntime,openvino

The checkpoint's own preprocessing (resolution, mean/std) is used. Calibration images come from
the ELPV *train* split and accuracy is measured on the *test* split of the split the run itself
used (read from the ``data.json`` that fine-tuning writes beside the checkpoint, checked file by
file; without it the default stratified 70/15/15 split, seed 0), so no test image is seen during
calibration. Target (issue 5): drop < 1 point, int8 >= 2x the fp32 ONNX throughput. Prints JSON.
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
from torch.utils.data import DataLoader


def _label_mode(num_classes: int, given: str) -> str:
    if given != "auto":
        return given
    if num_classes == 2:
        return "binary"
    if num_classes == 4:
        return "4class"
    raise SystemExit(
        f"the checkpoint has {num_classes} classes; ELPV has 2 (binary) or 4 (4class): is this "
        f"an ELPV checkpoint? pass --label-mode to force one"
    )


def _run_split(checkpoint: Path) -> dict[str, Any] | None:
    """The split record of the fine-tuning run that wrote ``checkpoint`` (its data.json)."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    side = folder / "data.json"
    if not side.is_file():
        return None
    record = json.loads(side.read_text()).get("split")
    return record if isinstance(record, dict) and record.get("mode") == "stratified" else None


def _loaders(
    model: Any, label_mode: str, seed: int, batch: int, record: dict[str, Any] | None
) -> tuple[Any, Any, int, int]:
    from effnet.data import ImageDataset, SplitFractions, eval_transform, load_source

    fractions = None
    if record is not None:  # the run's own split: same fractions and seed reproduce it
        seed = int(record["seed"])
        fr = record["fractions"]
        fractions = SplitFractions(val=float(fr["val"]), test=float(fr["test"]))
    splits = load_source("elpv", label_mode=label_mode, seed=seed, fractions=fractions)
    if splits.test is None:
        raise SystemExit("the ELPV source returned no test split")
    if record is not None:
        recorded = [f for f, _ in record["splits"]["test"]["files"]]
        if [splits.test.relpath(p) for p, _ in splits.test.samples] != recorded:
            raise SystemExit(
                "the ELPV test split rebuilt from the run's data.json differs from the recorded "
                "one; the data changed since the run: re-run fine-tuning or pass a checkpoint "
                "without data.json to use the default split"
            )
    transform = eval_transform(model)
    gen = torch.Generator().manual_seed(seed)
    calib = DataLoader(
        ImageDataset(splits.train, transform), batch_size=16, shuffle=True, generator=gen
    )
    held_out = DataLoader(ImageDataset(splits.test, transform), batch_size=batch)
    return calib, held_out, len(splits.train), len(splits.test)


def _speed(fp32: str, int8: str, runtime: str, res: int, chans: int, threads: int) -> dict:
    from effnet.bench.timing import measure_interleaved
    from effnet.export.quantize import onnx_runner

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
    parser.add_argument("--label-mode", default="auto", choices=("auto", "binary", "4class"))
    parser.add_argument("--seed", type=int, default=0, help="split seed of the fine-tuning run")
    parser.add_argument("--runtime", default="onnxruntime", help="onnxruntime,openvino")
    parser.add_argument("--calib-images", type=int, default=512)
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("int8_elpv"), help="output folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from effnet.export import Int8AccuracyError, export_onnx, quantize_int8
    from effnet.weights import load_checkpoint

    model, _ = load_checkpoint(args.checkpoint, model=args.model)
    model.eval()
    mode = _label_mode(model.num_classes, args.label_mode)
    record = _run_split(Path(args.checkpoint))
    calib, held_out, n_train, n_test = _loaders(model, mode, args.seed, 64, record)
    args.out.mkdir(parents=True, exist_ok=True)
    fp32 = args.out / "model.fp32.onnx"
    export_onnx(model, fp32, dynamic_batch=True)
    res = model.preprocess.input_size
    results: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "architecture": model.spec.name,
        "label_mode": mode,
        "split": "the run's own (data.json)" if record is not None else "default 70/15/15",
        "resolution": res,
        "train_images": n_train,
        "test_images": n_test,
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
