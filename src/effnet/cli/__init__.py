"""EfficientNet made easy: models, weights, fine-tuning, export, benchmarks.

`effnet COMMAND --help` explains a command, with examples. The log goes to stderr (-q: warnings
only, no progress bars; -v: debug), results to stdout.

Examples:
  effnet list '*lite*'
  effnet finetune --data path/to/class_folders --out runs/mine
  effnet -q predict photo.jpg --checkpoint runs/mine --json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from effnet import __version__
from effnet.cli import lab, models, perf, report, train, weights
from effnet.cli.flags import HelpFormatter, add_command, parser_text
from effnet.cli.output import logging_to_stderr
from effnet.errors import ConfigError, EffnetError
from effnet.host import fast_malloc
from effnet.train.distributed import record_failure

# Each module adds its subcommands; a subcommand stores its handler as ``func``.
_COMMAND_MODULES = (models, weights, train, perf, lab, report)


def build_parser() -> argparse.ArgumentParser:
    text = parser_text(__doc__ or "")
    parser = argparse.ArgumentParser(
        prog="effnet", formatter_class=HelpFormatter, description=text["description"],
        epilog=text["epilog"],
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"effnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.add_commands(sub)
    p = add_command(sub, cmd_completion)
    p.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete for")
    for _, p in walk(parser):  # before or after the command: effnet -q list, effnet list -q
        g = p.add_mutually_exclusive_group()
        top = p is parser  # a subcommand's default must not reset what the top level counted
        g.add_argument("-q", "--quiet", action="count", default=0 if top else argparse.SUPPRESS,
                       help="warnings only, no progress bars (-qq: errors only)")  # fmt: skip
        g.add_argument("-v", "--verbose", action="count", default=0 if top else argparse.SUPPRESS,
                       help="debug messages, with times and where they come from")  # fmt: skip
    return parser


def walk(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """``(prog, parser)`` for ``parser`` and every subcommand's, nested ones (``lab search``)
    too."""
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += walk(child)
    return found


def cmd_completion(args: argparse.Namespace) -> int:
    """Print a completion script for bash or zsh: every command and flag, completed without
    starting Python.

    Generated from this command line by shtab (pip install 'effnet[completion]').

    Examples:
      effnet completion bash > ~/.local/share/bash-completion/completions/effnet
      effnet completion zsh > ~/.zfunc/_effnet    # with fpath+=(~/.zfunc) in ~/.zshrc
    """
    try:
        import shtab
    except ImportError:
        raise ConfigError(
            "shell completion needs the shtab package: pip install 'effnet[completion]'"
        ) from None
    print(shtab.complete(build_parser(), shell=args.shell))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # the command owns the process: large tensors reuse freed memory (effnet.host.fast_malloc)
    with logging_to_stderr(args.verbose - args.quiet), fast_malloc():
        # A problem the user can fix (EffnetError) or a file the system cannot read or write
        # (OSError) is one line and the error's exit code; anything else is a bug: a traceback.
        try:
            return int(args.func(args) or 0)
        except (EffnetError, OSError) as exc:
            record_failure(exc)  # under torchrun: the root cause its summary shows
            code = exc.exit_code if isinstance(exc, EffnetError) else 1
            print(f"effnet {args.command}: error: {exc}", file=sys.stderr)
            return code
        except Exception as exc:
            record_failure(exc)
            raise
