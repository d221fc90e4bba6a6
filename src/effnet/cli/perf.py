"""``effnet export``, ``effnet bench``, ``effnet choose``: thin wrappers over export and bench."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from effnet.cli.output import format_table, print_json


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers like '1,32', got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers like '1,32', got {text!r}")
    return values


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model or checkpoint to ONNX / TorchScript / ExportedProgram (+ int8)",
        description="Folds BatchNorm, exports, reloads the file and prints its max logit "
        "difference to the eager model. The preprocessing is written beside the file as "
        "<file>.json. --int8 adds a static int8 ONNX model calibrated on --calib data and "
        "refuses it when the held-out top-1 drops by more than --max-drop points.",
    )
    p.add_argument("source", help="a model name (effnet list) or a checkpoint file")
    p.add_argument("--format", choices=("onnx", "torchscript", "exported-program"), default="onnx")
    p.add_argument("--out", type=Path, help="output file (default: <model>.onnx/.ts/.pt2)")
    p.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="keep the batch dimension dynamic (default: fixed batch 1 for latency serving)",
    )
    p.add_argument("--resolution", type=int, help="input size (default: the model's)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17, default 18)")
    p.add_argument("--model", help="variant of a foreign checkpoint without effnet metadata")
    p.add_argument("--num-classes", type=int, help="classifier size when exporting by name")
    p.add_argument("--pretrained", action="store_true", help="with a name: load its weights")
    p.add_argument("--int8", action="store_true", help="also write a checked int8 ONNX model")
    p.add_argument(
        "--calib",
        help="labelled data for --int8: a class folder, split folders, a CSV, or 'elpv'; "
        "calibration draws from its train split, accuracy is measured on its test split (the "
        "fine-tuning run's own split when its data.json lies beside the checkpoint)",
    )
    p.add_argument("--calib-images", type=int, default=512, help="calibration images (512)")
    p.add_argument("--eval-images", type=int, help="held-out images to evaluate (all)")
    p.add_argument("--max-drop", type=float, default=1.0, help="allowed top-1 drop, points")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads for the int8 check")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "bench",
        help="latency, throughput, memory and GFLOP/s per runtime (optionally vs timm/torchvision)",
    )
    p.add_argument("models", nargs="*", default=["efficientnet_b0"], help="variant names")
    p.add_argument("--batch", type=_int_list, default=[1, 32], help="batch sizes, e.g. 1,32")
    p.add_argument("--res", type=_int_list, help="resolutions (default: each model's own)")
    p.add_argument(
        "--runtime",
        type=_str_list,
        default=["eager", "optimized", "onnx"],
        help="comma list of: eager, optimized, compiled, onnx, onnx-int8, openvino, "
        "openvino-bf16 (default eager,optimized,onnx)",
    )
    p.add_argument("--peers", action="store_true", help="time timm's and torchvision's too")
    p.add_argument(
        "--memory",
        choices=("subprocess", "inline", "off"),
        default="subprocess",
        help="peak memory: each runner alone in a fresh process (default, slower), during the "
        "first call in this process (inline), or not at all",
    )
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "choose",
        help="the most accurate variant that meets a latency budget on this machine",
        description="Measures candidate variants here (cached per hardware and library "
        "versions in $EFFNET_CACHE or ~/.cache/effnet) and picks the highest published ImageNet "
        "top-1 within the budget; prints the Pareto table and can plot it.",
    )
    p.add_argument("--latency-ms", type=float, required=True, help="budget per batch, ms")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument(
        "--runtime",
        default="onnx",
        help="eager, optimized, compiled, onnx, onnx-int8, openvino (default onnx)",
    )
    p.add_argument("--min-top1", type=float, help="ignore variants below this top-1 (%%)")
    p.add_argument("--models", type=_str_list, help="candidates (default: all with a top-1)")
    p.add_argument("--res", type=int, help="measure all candidates at this size")
    p.add_argument("--threads", type=int, help="intra-op threads (default: library default)")
    p.add_argument("--plot", type=Path, default=Path("choose.png"), help="PNG (choose.png)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-cache", action="store_true", help="measure again, store nothing")
    p.add_argument("--all", action="store_true", help="measure even hopeless candidates")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_choose)


def cmd_export(args: argparse.Namespace) -> int:
    from effnet.export import Int8AccuracyError, export_model, load_source, quantize_int8

    if args.int8 and args.format != "onnx":
        raise ValueError("--int8 produces an ONNX model: use it with --format onnx")
    if args.int8 and not args.calib:
        raise ValueError(
            "--int8 needs labelled data to calibrate and check accuracy: pass --calib DIR "
            "(class folders), a CSV, or 'elpv'"
        )
    model, meta = load_source(
        args.source, model=args.model, pretrained=args.pretrained, num_classes=args.num_classes
    )
    if args.resolution and getattr(model, "preprocess", None) is not None:
        # the saved preprocessing (and the int8 calibration images) must match the export size
        model.preprocess = dataclasses.replace(
            model.preprocess, input_size=args.resolution, resize=None
        )
    # the data first: a wrong --calib should fail before minutes of export
    loaders = _calibration_loaders(model, args.calib, args.source) if args.int8 else None
    result = export_model(
        model,
        args.out,
        args.format,
        resolution=args.resolution,
        dynamic_batch=args.dynamic_batch or args.int8,
        metadata={"source": meta.get("source", args.source)},
        **({"opset": args.opset} if args.format == "onnx" else {}),
    )
    out: dict[str, Any] = result.to_dict()
    code = 0
    if loaders is not None:
        calib, held_out = loaders
        target = result.path.with_name(result.path.name.removesuffix(".onnx") + ".int8.onnx")
        try:
            report = quantize_int8(
                result.path,
                calib,
                held_out,
                out=target,
                max_drop=args.max_drop,
                calibration_images=args.calib_images,
                eval_images=args.eval_images,
                threads=args.threads,
            )
            out["int8"] = report.to_dict()
        except Int8AccuracyError as exc:
            out["int8"] = exc.report.to_dict()
            out["int8_refused"] = str(exc)
            code = 3
    if args.json:
        print_json(out)
        return code
    print(
        f"exported {args.source} -> {result.path} ({result.format}, {result.seconds:.1f} s); "
        f"preprocessing in {result.metadata_path}"
    )
    print(
        f"parity vs eager: max |logit difference| = {result.parity_max_abs_diff:.2e} "
        f"(allowed {result.parity_atol:g}) -- OK"
    )
    if result.graph:
        g = result.graph
        print(
            f"graph: opset {g['opset']}, input {g['input_shape']}, {sum(g['ops'].values())} nodes, "
            f"padding {'static' if g['static_padding'] else 'DYNAMIC'}"
        )
    if out.get("int8"):
        i8 = out["int8"]
        print(
            f"int8 (held-out, {i8['eval_images']} images): fp32 top-1 {i8['fp32_top1']:.2f}%  "
            f"int8 top-1 {i8['int8_top1']:.2f}%  drop {i8['drop_points']:+.2f} points "
            f"(allowed {args.max_drop}), recipe {i8['recipe']}"
        )
        if code:
            print(f"effnet export: {out['int8_refused']}", file=sys.stderr)
        else:
            print(f"int8 model -> {i8['path']}")
    return code


def _run_data(checkpoint: str, calib: str) -> dict[str, Any]:
    """The data record (``data.json``) a fine-tuning run wrote beside ``checkpoint``, when it
    describes the same ``calib`` source; empty otherwise."""
    path = Path(checkpoint).expanduser()
    side = (path if path.is_dir() else path.parent) / "data.json"
    if not path.exists() or not side.is_file():
        return {}
    import json

    record = json.loads(side.read_text())
    return record if str(record.get("source")) == calib else {}


def _calibration_loaders(model: Any, source: str, checkpoint: str) -> tuple[Any, Any]:
    """(calibration, held-out) batches from a data source, preprocessed for ``model``.

    When the checkpoint's fine-tuning run recorded a stratified split of the same source, the
    same split (fractions, seed, ELPV label mode) is rebuilt, so the held-out images are the
    run's own test images, never ones it trained on.
    """
    from torch.utils.data import DataLoader

    from effnet.data import ImageDataset, SplitFractions, eval_transform, load_source

    run = _run_data(checkpoint, source)
    split = run.get("split") or {}
    kwargs: dict[str, Any] = {}
    if split.get("mode") == "stratified" and split.get("fractions"):
        fr = split["fractions"]
        kwargs["fractions"] = SplitFractions(val=float(fr["val"]), test=float(fr["test"]))
        kwargs["seed"] = int(split.get("seed") or 0)
    if source.lower() == "elpv":
        n = getattr(model, "num_classes", None)
        kwargs["label_mode"] = run.get("label_mode") or {2: "binary"}.get(n, "4class")
    splits = load_source(source, **kwargs)
    n_model = getattr(model, "num_classes", None)
    if n_model is not None and len(splits.classes) != n_model:
        raise ValueError(
            f"{source} has {len(splits.classes)} classes {list(splits.classes)} but the model "
            f"predicts {n_model}; calibrate with the data the model was fine-tuned on"
        )
    transform = eval_transform(model)
    held_out = splits.test or splits.val
    if held_out is None:
        raise ValueError(
            f"{source} has no held-out split to measure the int8 accuracy on; use a source "
            f"that effnet.data splits (a class folder, a CSV) or one with val/test folders"
        )
    calib = DataLoader(ImageDataset(splits.train, transform), batch_size=16, shuffle=True)
    evals = DataLoader(ImageDataset(held_out, transform), batch_size=32)
    return calib, evals


def cmd_bench(args: argparse.Namespace) -> int:
    from effnet.bench import bench

    report = bench(
        args.models,
        batches=args.batch,
        resolutions=args.res,
        runtimes=args.runtime,
        peers=args.peers,
        num_threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        memory=False if args.memory == "off" else args.memory,
        progress=not args.json,
    )
    if args.json:
        print_json(report.to_dict())
        return 0
    cpu = report.environment["cpu"]
    print(f"{cpu['model']}, {cpu['usable_cores']} cores, threads={args.threads}")
    rows = []
    for r in report.rows:
        vs_tv = r.ratios.get(f"torchvision/{r.runtime}")
        vs_timm = r.ratios.get(f"timm/{r.runtime}")
        rows.append(
            [
                r.model,
                r.library,
                r.runtime,
                r.batch,
                r.resolution,
                r.median_ms,
                r.p90_ms,
                r.images_per_s,
                r.gflops_per_s,
                "-" if r.peak_memory_mb is None else r.peak_memory_mb,
                "-" if vs_tv is None else f"{vs_tv:.2f}x",
                "-" if vs_timm is None else f"{vs_timm:.2f}x",
                r.error[:60] or r.note,
            ]
        )
    print(
        format_table(
            [
                "model",
                "lib",
                "runtime",
                "batch",
                "res",
                "median ms",
                "p90 ms",
                "img/s",
                "GFLOP/s",
                "peak MB",
                "vs tv",
                "vs timm",
                "note",
            ],
            rows,
        )
    )
    seen = set()
    for r in report.rows:
        if (r.model, r.resolution) not in seen:
            seen.add((r.model, r.resolution))
            print(f"{r.model}: {r.params:,} params, {r.gmacs:.3f} GMACs/image at {r.resolution}px")
    return 0


def cmd_choose(args: argparse.Namespace) -> int:
    from effnet.bench import choose

    choice = choose(
        args.latency_ms,
        batch=args.batch,
        runtime=args.runtime,
        min_top1=args.min_top1,
        candidates=args.models,
        resolution=args.res,
        num_threads=args.threads,
        cache=not args.no_cache,
        plot=None if args.no_plot else args.plot,
        repeats=args.repeats,
        measure_all=args.all,
        progress=not args.json,
    )
    if args.json:
        print_json(choice.to_dict())
        return 0 if choice.best else 1
    rows = [
        [
            r.model,
            r.top1,
            r.resolution,
            r.gmacs,
            "-" if r.latency_ms is None else r.latency_ms,
            "-" if r.p90_ms is None else r.p90_ms,
            "yes" if r.within_budget else "no",
            "*" if r.pareto else "",
            "cache" if r.cached else ("skipped" if r.skipped else "measured"),
        ]
        for r in sorted(choice.rows, key=lambda r: (r.latency_ms is None, r.latency_ms or 0))
    ]
    print(
        f"budget {choice.latency_budget_ms:g} ms per batch of {choice.batch}, runtime "
        f"{choice.runtime}" + (f", top-1 >= {choice.min_top1:g}" if choice.min_top1 else "")
    )
    print(
        format_table(
            [
                "model",
                "top-1",
                "res",
                "GMACs",
                "median ms",
                "p90 ms",
                "in budget",
                "pareto",
                "source",
            ],
            rows,
        )
    )
    for note in choice.notes:
        print(note)
    if choice.best is not None:
        b = choice.best
        print(
            f"\nchoose: {b.model} -- top-1 {b.top1:.2f}% ({b.top1_source}), {b.latency_ms:.1f} ms "
            f"at {b.resolution}px"
        )
    if choice.plot:
        print(f"plot: {choice.plot}")
    if choice.cache_file:
        print(f"measurements cached in {choice.cache_file}")
    return 0 if choice.best else 1
