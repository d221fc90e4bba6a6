"""``effnet report RUN``: the run report as one web page, ``RUN/report.html``; ``effnet push RUN
--repo ORG/NAME``: a run's best weights and model card on the Hugging Face Hub, in timm's
repository format."""

from __future__ import annotations

import argparse

from effnet.cli.flags import add_command, call
from effnet.report import write_report
from effnet.report.hub import push_run


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_report)
    p.add_argument("run", metavar="RUN", help="a run directory (the --out of effnet finetune)")
    p.add_argument(
        "--gallery", type=int, default=12, help="images per gallery row kind (default 12)"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p = add_command(sub, cmd_push)
    p.add_argument("run_dir", metavar="RUN", help="a run directory (the --out of effnet finetune)")
    p.add_argument("--repo", required=True, help="the Hub repository, ORG/NAME (created if new)")
    p.add_argument("--local-dir", metavar="DIR", help="also keep the repository's files in DIR")
    p.add_argument("--dry-run", action="store_true", help="write --local-dir, upload nothing")
    p.add_argument("--private", action="store_true", help="create the repository private")


def cmd_report(args: argparse.Namespace) -> int:
    """Write RUN/report.html: mistakes, activation maps, calibration, per-class metrics.

    One self-contained page (opens offline) for a fine-tuning or training run: summary,
    learning curves, confusion matrices, per-class metrics, a gallery of the most confident
    mistakes and least confident correct predictions with Grad-CAM overlays, calibration before
    and after temperature scaling, the config and the split. Predictions the run did not save
    are recomputed from its best checkpoint.

    Examples:
      effnet report runs/mine
      xdg-open "$(effnet -q report runs/mine)"
    """
    print(write_report(args.run, gallery=args.gallery, device=args.device))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Upload a run's best checkpoint to the Hugging Face Hub with a model card.

    Writes model.safetensors (the best weights, with effnet's metadata), config.json (timm's
    keys: architecture, num_classes, label_names, pretrained_cfg) and README.md (data, recipe,
    test metrics with balanced accuracy, preprocessing, how to load), then uploads them through
    huggingface_hub (log in with `huggingface-cli login` or set HF_TOKEN). Anyone then loads
    the model with effnet.create_model("hf-hub:ORG/NAME", pretrained=True).

    Examples:
      effnet push runs/mine --repo my-team/elpv-lite0
      effnet push runs/mine --repo my-team/elpv-lite0 --dry-run --local-dir hub/elpv-lite0
    """
    result = call(push_run, args, repo=args.repo)
    where = result.url or f"{result.folder} (not uploaded: --dry-run)"
    print(f"{result.repo}: {', '.join(result.files)} -> {where}")
    return 0
