"""Printing helpers shared by the commands: aligned text tables, JSON, the log on stderr."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any


@contextlib.contextmanager
def logging_to_stderr(verbosity: int) -> Iterator[None]:
    """For one command, the ``effnet`` logger's records on stderr: from INFO (progress), from
    WARNING with ``-q`` (``verbosity`` -1), ERROR with ``-qq``, DEBUG with ``-v`` (with the
    time and the logger's name). The library itself configures no logging."""
    logger = logging.getLogger("effnet")
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.ERROR)
    level = logging.DEBUG if verbosity > 0 else level
    handler = logging.StreamHandler(sys.stderr)
    detail = "%(asctime)s %(name)s %(levelname)s: " if verbosity > 0 else ""
    handler.setFormatter(logging.Formatter(detail + "%(message)s", "%H:%M:%S"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # the library's records go here once, not also to the root logger
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars: on a terminal, unless ``-q`` or ``--json``."""
    quiet = getattr(args, "quiet", 0) or getattr(args, "json", False)
    return not quiet and sys.stderr.isatty()


def print_json(data: Any, code: int = 0) -> int:
    """``data`` on stdout as JSON (dataclasses as dicts); returns the exit ``code``."""

    def default(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        raise TypeError(f"cannot serialise {type(obj).__name__}")

    print(json.dumps(data, indent=2, default=default))
    return code


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned table: numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], (int, float)) for row in rows) if rows else False
        for i in range(len(headers))
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
