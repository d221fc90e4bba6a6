"""The ``effnet`` command: thin subcommands that parse, call one library function, and print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from effnet import __version__
from effnet.cli import lab, models, perf, report, train, weights

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
    except (ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"effnet {args.command}: error: {message}", file=sys.stderr)
        return 2
