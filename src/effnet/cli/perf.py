"""``effnet export``, ``effnet bench``, ``effnet choose``: thin wrappers over export and bench."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from effnet.cli.flags import add_command, add_json, call, ints, names
from effnet.cli.output import format_table, print_json, show_progress
from effnet.errors import ConfigError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_export)
    p.add_argument("source", help="a model name (effnet list) or a checkpoint file")
    p.add_argument("--format", choices=("onnx", "torchscript", "exported-program"), default="onnx",
                   help="the file to write (default onnx)")  # fmt: skip
    p.add_argument("--out", type=Path, help="output file (default: <model>.onnx/.ts/.pt2)")
    p.add_argument("--dynamic-batch", action="store_true", help="dynamic batch (default: 1)")
    p.add_argument("--resolution", type=int, help="input size (default: the model's)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17, default 18)")
    p.add_argument("--model", help="variant of a foreign checkpoint without effnet metadata")
    p.add_argument("--num-classes", type=int, help="classifier size when exporting by name")
    p.add_argument("--pretrained", action="store_true", help="with a name: load its weights")
    p.add_argument("--int8", action="store_true", help="also write a checked int8 ONNX model")
    g = p.add_argument_group("int8 calibration and check")
    g.add_argument("--calib", dest="data", help="labelled data: class folder, CSV, 'elpv'")
    g.add_argument("--calib-label-mode", dest="label_mode", help="elpv: 4class | binary")
    g.add_argument("--calib-images", dest="calibration_images", type=int, help="(512)")
    g.add_argument("--eval-images", type=int, help="held-out images to evaluate (all)")
    g.add_argument("--max-drop", type=float, help="allowed top-1 drop, points (1.0)")
    g.add_argument("--threads", type=int, help="ONNX Runtime threads for the int8 check")
    add_json(p, "text")

    p = add_command(sub, cmd_bench)
    p.add_argument("models", nargs="*", default=["efficientnet_b0"], help="variant names")
    p.add_argument("--batch", dest="batches", type=ints, default=[1, 32], help="e.g. 1,32")
    p.add_argument("--res", dest="resolutions", type=ints, help="(default: each model's own)")
    runtimes = "eager,optimized,onnx"
    p.add_argument("--runtime", dest="runtimes", type=names, default=names(runtimes),
                   help=f"effnet.bench.EFFNET_RUNTIMES (default {runtimes})")  # fmt: skip
    p.add_argument("--peers", action="store_true", help="time timm's and torchvision's too")
    p.add_argument("--memory", choices=("subprocess", "inline", "off"), default="subprocess",
                   help="peak memory of each runner alone in a fresh process (default), during "
                   "the first call in this process (inline), or not at all")  # fmt: skip
    p.add_argument("--threads", dest="num_threads", type=int, default=2, help="(default 2)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed calls (default 10)")
    add_json(p, "a table")

    p = add_command(sub, cmd_choose)
    p.add_argument("--latency-ms", type=float, required=True, help="budget per batch, ms")
    p.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    p.add_argument("--runtime", default="onnx", help="an effnet bench runtime (default onnx)")
    p.add_argument("--min-top1", type=float, help="ignore variants below this top-1 (%%)")
    p.add_argument("--models", dest="candidates", type=names, help="(default: all with a top-1)")
    p.add_argument("--res", dest="resolution", type=int, help="measure all at this size")
    p.add_argument("--threads", dest="num_threads", type=int, help="intra-op threads")
    p.add_argument("--plot", type=Path, help="also draw the Pareto front to this PNG")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="measure again")
    p.add_argument("--all", dest="measure_all", action="store_true", help="measure all")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per model (default 10)")
    add_json(p, "a table")


def cmd_export(args: argparse.Namespace) -> int:
    """Export a model or checkpoint to ONNX / TorchScript / ExportedProgram (+ int8).

    Folds BatchNorm, exports, reloads the file and prints its max logit difference to the eager
    model. The preprocessing is written beside the file as <file>.json. --int8 adds a static
    int8 ONNX model calibrated on the train split of --calib data and refuses it when the top-1
    on its held-out split (the fine-tuning run's own, from its data.json) drops by more than
    --max-drop points.

    Examples:
      effnet export efficientnet_b0 --pretrained --dynamic-batch
      effnet export runs/mine --format onnx --out model.onnx --int8 --calib elpv
    """
    from effnet.export import Int8Options, export_source

    if args.int8 and not args.data:
        raise ConfigError(
            "--int8 needs labelled data to calibrate and check accuracy: pass --calib DIR "
            "(class folders), a CSV, or 'elpv'"
        )
    int8 = call(Int8Options, args) if args.int8 else None
    result = call(export_source, args, int8=int8)
    code = 3 if "int8_refused" in result.extra else 0
    if args.json:
        return print_json(result.to_dict(), code)
    print("\n".join(result.describe()))
    if code:
        print(f"effnet export: {result.extra['int8_refused']}", file=sys.stderr)
    return code


def cmd_bench(args: argparse.Namespace) -> int:
    """Latency, throughput, memory and GFLOP/s per runtime (optionally vs timm/torchvision).

    Examples:
      effnet bench efficientnet_b0 --batch 1,32
      effnet bench efficientnet_b0 tf_efficientnet_lite0 --runtime eager,onnx --peers
    """
    from effnet.bench import bench

    report = call(bench, args, progress=show_progress(args))  # --memory off: none measured
    if args.json:
        return print_json(report.to_dict())
    cpu = report.environment["cpu"]
    print(f"{cpu['model']}, {cpu['usable_cores']} cores, threads={args.num_threads}")
    print(format_table(*report.table()))
    print("\n".join(report.costs()))
    return 0


def cmd_choose(args: argparse.Namespace) -> int:
    """The most accurate variant that meets a latency budget on this machine.

    Measures candidate variants here (cached per hardware and library versions) and picks the
    highest published ImageNet top-1 within the budget; prints the Pareto table and can plot it.

    Examples:
      effnet choose --latency-ms 50 --batch 8 --runtime optimized --min-top1 78
      effnet choose --latency-ms 20 --models tf_efficientnet_lite0,efficientnet_b0 --json
    """
    from effnet.bench import choose

    choice = call(choose, args, plot=args.plot or None, progress=show_progress(args))
    if args.json:
        return print_json(choice.to_dict(), 0 if choice.best else 1)
    print(choice.headline())
    print(format_table(*choice.table()))
    print("\n".join(choice.notes + choice.summary()))
    return 0 if choice.best else 1
