"""How commands are declared: help from docstrings and field metadata, calls by parameter name.

:func:`add_command` names a subcommand after its handler, whose docstring is its help (summary,
description, and an ``Examples:`` block printed as written); :func:`add_flags` makes one flag per
dataclass field from its :func:`~effnet.train.config.setting` metadata (help, ``group``,
``aliases``, ``switch``); :func:`call` calls a library function with the flags named like its
parameters. A flag not given is ``None`` and leaves the dataclass's or function's default.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import textwrap
import typing
from collections.abc import Callable
from typing import Any

from effnet.train.config import GROUPS, field_metadata

EXAMPLES = "Examples:"


def HelpFormatter(prog: str) -> argparse.HelpFormatter:
    """argparse's ``formatter_class``: the description and the examples as written."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32, width=100)


def parser_text(doc: str) -> dict[str, str]:
    """``help``, ``description`` and ``epilog`` of a parser from a docstring (module doc)."""
    doc = inspect.cleandoc(doc)
    body, _, examples = doc.partition(EXAMPLES)
    paragraphs = [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]
    commands = textwrap.indent(textwrap.dedent(examples.strip("\n")), "  ")
    return {
        "help": paragraphs[0] if paragraphs else "",
        "description": "\n\n".join(textwrap.fill(p, 96) for p in paragraphs),
        "epilog": f"{EXAMPLES}\n{commands}" if examples.strip() else "",
    }


def add_command(
    sub: argparse._SubParsersAction, handler: Callable[..., int], name: str | None = None
) -> Any:
    """A subcommand ``cmd_x_y`` -> ``x-y`` (or ``name``), its texts from the handler's
    docstring (:func:`parser_text`)."""
    name = name or handler.__name__.removeprefix("cmd_").replace("_", "-")
    p = sub.add_parser(name, formatter_class=HelpFormatter, **parser_text(handler.__doc__ or ""))
    p.set_defaults(func=handler)
    return p


def call(fn: Callable[..., Any], args: argparse.Namespace, **extra: Any) -> Any:
    """``fn`` called with every parsed flag named like one of its parameters (flags not given,
    ``None``, leave the parameter's default), and ``extra``."""
    names = inspect.signature(fn).parameters
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return fn(**{**given, **extra})


def add_flags(parser: Any, cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """One ``--field-name`` flag per field of dataclass ``cls`` (on a parser or argument group).
    On a parser, fields with a ``group`` go under that heading, the headings in the order of
    :data:`GROUPS`; returns the headings (argument groups) by name."""
    fields = [f for f in dataclasses.fields(cls) if f.name not in skip]
    meta = {f.name: field_metadata(cls, f.name) for f in fields}
    groups: dict[str, Any] = {}
    if isinstance(parser, argparse.ArgumentParser):
        used = {m["group"] for m in meta.values() if "group" in m}
        groups = {g: parser.add_argument_group(g) for g in GROUPS if g in used}
    hints = typing.get_type_hints(cls)
    for f in fields:
        m = meta[f.name]
        target = groups.get(m.get("group", ""), parser)
        flag = "--" + m.get("flag", f.name).replace("_", "-")
        aliases = m.get("aliases", ())
        names = [*(a for a in aliases if not a.startswith("--")), flag]
        names += [a for a in aliases if a.startswith("--")]
        text = m.get("help", "")
        if "(default" not in text:  # a help that explains its default keeps its own words
            text = f"{text} (default: {f.default})"
        hint = str(hints[f.name])
        if "bool" in hint:
            target.add_argument(
                *names, action=argparse.BooleanOptionalAction, default=None, help=text
            )
            continue
        kind: Any = str
        if "int" in hint and "float" not in hint:
            kind = int
        elif "float" in hint:
            kind = float
        if kind is not str and (f.default is None or "str" in hint) and "auto" in text:
            kind = _or_auto(kind)  # a planned size, count or rate: a number, or auto
        target.add_argument(*names, type=kind, default=None, dest=f.name, help=text)
        if "switch" in m:
            switch, value = m["switch"]
            target.add_argument(
                switch, dest=f.name, action="store_const", const=value, help=f"= {flag} {value}"
            )
    return groups


def _or_auto(kind: type) -> Any:
    """An argparse type: a number of ``kind``, or the word ``auto``."""

    def parse(text: str) -> Any:
        return "auto" if text.strip().lower() == "auto" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def given(args: argparse.Namespace, cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given; ``-q`` turns a ``progress`` field off."""
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    flags = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if getattr(args, "quiet", 0) and "progress" in names:
        flags.setdefault("progress", False)
    return flags


def built(cls: type, args: argparse.Namespace) -> Any:
    """``cls`` (a dataclass of settings) from the flags given, its defaults for the rest."""
    return cls(**given(args, cls))


def add_json(parser: Any, instead_of: str = "a table") -> None:
    """The ``--json`` switch of a command that prints ``instead_of`` otherwise."""
    parser.add_argument("--json", action="store_true", help=f"print JSON instead of {instead_of}")


def ints(text: str) -> list[int]:
    """An argparse type: comma-separated whole numbers >= 1 (``--batch 1,32``)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers like '1,32', got {text!r}")
    return values


def names(text: str) -> list[str]:
    """An argparse type: comma-separated names (``--runtime eager,onnx``)."""
    return [v.strip() for v in text.split(",") if v.strip()]
