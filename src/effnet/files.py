"""Files effnet writes: whole or not at all, and the key its metadata travels under.

Every file effnet writes (checkpoints, run state, reports, metrics, export sidecars, lab results)
goes through :func:`atomic_write`: the bytes go to a temporary file in the same folder, which is
then renamed over the target. A rename within one file system is atomic, so a reader, or a run
resumed after a kill, sees the previous complete file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["METADATA_KEY", "atomic_write", "read_json", "write_json", "write_text"]

METADATA_KEY = "effnet"
"""The key of effnet's JSON metadata inside a file: a safetensors header entry, an ONNX
``metadata_props`` entry."""


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file next to ``path``, then rename it over ``path``.

    The folder is created when missing. On any error the temporary file is removed and ``path``
    keeps its previous content. The file is readable by everyone (``mkstemp`` would leave it
    owner-only), like any file written with ``open``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; on an error, clean up
    return target


def read_json(path: str | os.PathLike[str], error: type[Exception], fix: str) -> Any:
    """The JSON in ``path``; a file that is not JSON raises ``error`` that says ``fix``."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON ({exc}); {fix}") from None


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike[str], data: Any, *, sort_keys: bool = False) -> Path:
    """Write ``data`` as indented JSON atomically (values JSON cannot hold become strings)."""
    text = json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n"
    return write_text(path, text)
