"""How commands are declared: help from docstrings and field metadata, calls by parameter name.

* :func:`add_command`: a subcommand named after its handler, its help the handler's docstring.
* :func:`add_flags`: one flag per field of a dataclass (fine-tuning and training configs, the
  lab's data, recipe, base and run options), its help from the field's metadata
  (:func:`effnet.train.config.setting`). Defaults are left to the dataclass: a flag not given is
  ``None`` and changes nothing.
* :func:`call`: a library function called with the parsed flags named like its parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

from effnet.train.config import field_metadata


def add_command(sub: argparse._SubParsersAction, handler: Callable[..., int]) -> Any:
    """A subcommand ``cmd_x_y`` -> ``x-y``: the first paragraph of its docstring is the help,
    the whole docstring the description."""
    doc = inspect.cleandoc(handler.__doc__ or "")
    name = handler.__name__.removeprefix("cmd_").replace("_", "-")
    summary = " ".join(doc.split("\n\n")[0].split())
    p = sub.add_parser(name, help=summary, description=" ".join(doc.split()))
    p.set_defaults(func=handler)
    return p


def call(fn: Callable[..., Any], args: argparse.Namespace, **extra: Any) -> Any:
    """``fn`` called with every parsed flag named like one of its parameters (flags not given,
    ``None``, leave the parameter's default), and ``extra``."""
    names = inspect.signature(fn).parameters
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return fn(**{**given, **extra})


def add_flags(parser: Any, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` flag per field of dataclass ``cls`` (on a parser or argument group)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta = field_metadata(cls, f.name)
        flag = "--" + meta.get("flag", f.name).replace("_", "-")
        text = meta.get("help", "")
        if "default" not in text:  # a help that explains its default keeps its own words
            text = f"{text} (default: {f.default})"
        hint = str(hints[f.name])
        if "bool" in hint:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=text
            )
            continue
        kind: Any = str
        if "int" in hint and "float" not in hint:
            kind = int
        elif "float" in hint:
            kind = float
        parser.add_argument(flag, type=kind, default=None, dest=f.name, help=text)


def given(args: argparse.Namespace, cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if f.name not in skip and getattr(args, f.name, None) is not None
    }
