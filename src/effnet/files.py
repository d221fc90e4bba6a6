"""Files effnet writes: whole or not at all, and the key its metadata travels under.

Every file effnet writes (checkpoints, run state, reports, metrics, export sidecars, lab results)
goes through :func:`atomic_write`: the bytes go to a temporary file in the same folder, which is
then renamed over the target. A rename within one file system is atomic, so a reader, or a run
resumed after a kill, sees the previous complete file or the new one, never half of one. A disk
that fills up while a file is written raises :class:`~effnet.errors.DiskFullError`, naming the
file and the space left, and leaves the previous file in place.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from effnet.errors import DiskFullError

__all__ = [
    "METADATA_KEY",
    "atomic_write",
    "disk_full",
    "free_space",
    "no_space_error",
    "read_json",
    "write_json",
    "write_text",
]

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
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        if disk_full(exc):
            raise no_space_error(target) from exc
        raise
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except Exception as exc:
        if not disk_full(exc):
            raise
        tmp.unlink(missing_ok=True)  # free what the partial file took before measuring
        raise no_space_error(target) from exc
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; on an error, clean up
    return target


def no_space_error(
    target: str | os.PathLike[str], fix: str = "Free some space and try again"
) -> DiskFullError:
    """The :class:`DiskFullError` for ``target``: the file, the space left, and ``fix``."""
    target = Path(target)
    error = DiskFullError(
        f"no space left on the disk while writing {target} ({free_space(target.parent)} free in "
        f"{target.parent}); its previous content is intact. {fix}"
    )
    error.errno, error.filename = errno.ENOSPC, str(target)
    return error


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a disk or quota is full: ``OSError`` ENOSPC/EDQUOT, or the text the
    libraries that write through their own code (safetensors) put in their exceptions."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def free_space(folder: str | os.PathLike[str]) -> str:
    """The space left on ``folder``'s disk, for people (``"1.2 MB"``)."""
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown space"
    units, i = ("bytes", "kB", "MB", "GB", "TB"), 0
    while free >= 1000 and i < len(units) - 1:
        free, i = free / 1000, i + 1
    return f"{free:.0f} bytes" if i == 0 else f"{free:.1f} {units[i]}"


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
