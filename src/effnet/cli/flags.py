"""Flags from dataclass fields: one flag per field, its help from the field's metadata.

The one mechanism every command uses (fine-tuning and training configs, the lab's data, recipe
and run options): a field declared with :func:`effnet.train.config.setting` carries its help.
Defaults are left to the dataclass: a flag not given is ``None`` and changes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from effnet.train.config import field_metadata


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
