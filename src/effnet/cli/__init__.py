"""The ``effnet`` command: thin subcommands that parse, call one library function, and print.

A problem the user can fix (:class:`~effnet.errors.EffnetError`) or a file the system cannot
read or write (``OSError``) is printed as one line and exits with the error's code; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from effnet import __version__
from effnet.cli import lab, models, perf, report, train, weights
from effnet.errors import EffnetError

# Each module adds its subcommands; a subcommand stores its handler as ``func``.
_COMMAND_MODULES = (models, weights, train, perf, lab, report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="effnet",
        description="EfficientNet made easy: models, weights, fine-tuning, export, benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"effnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (EffnetError, OSError) as exc:
        code = exc.exit_code if isinstance(exc, EffnetError) else 1
        print(f"effnet {args.command}: error: {exc}", file=sys.stderr)
        return code
