"""``effnet report RUN``: the run report as one web page, ``RUN/report.html``."""

from __future__ import annotations

import argparse

from effnet.cli.flags import add_command
from effnet.report import write_report


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_report)
    p.add_argument("run", metavar="RUN", help="a run directory (the --out of effnet finetune)")
    p.add_argument(
        "--gallery", type=int, default=12, help="images per gallery row kind (default 12)"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")


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
