"""effnet's error types: what a user can fix, each named for its kind.

Every error a user can act on is an :class:`EffnetError`; its message says what was expected,
what was found and what to do. The command line prints these (and ``OSError``) as one line with
the class's ``exit_code``; any other exception is a bug and keeps its traceback.

The kinds also derive from the builtin exception a caller would have caught before (an unknown
name is a ``KeyError``, bad data a ``ValueError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "BadDataError",
    "ConfigError",
    "DiskFullError",
    "DownloadError",
    "EffnetError",
    "RunDirError",
    "UnknownNameError",
    "UnknownOptionError",
    "WeightsError",
]


class EffnetError(Exception):
    """Base class: a problem with the user's input, files or environment, not a bug."""

    exit_code: int = 2

    def __str__(self) -> str:
        # KeyError would show its argument's repr (quotes, escaped newlines): show the message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UnknownNameError(EffnetError, KeyError):
    """A model, base, weight tag, format or other name that effnet does not know.

    The message lists the near names (``difflib``) and where to see all of them.
    """


class ConfigError(EffnetError, ValueError):
    """A configuration value of the wrong type, out of range, or inconsistent with another."""


class UnknownOptionError(ConfigError, TypeError):
    """A keyword no function of effnet's takes (a typo: the message lists the known ones)."""


class BadDataError(EffnetError, ValueError):
    """A dataset that cannot be trained or evaluated on as given (empty class, bad CSV, ...)."""


class WeightsError(EffnetError, ValueError):
    """A weights or checkpoint file that cannot be used: truncated, foreign, inconsistent."""


class DownloadError(EffnetError, OSError):
    """A download that failed or was refused (offline, checksum, size), naming the file."""

    exit_code = 1


class RunDirError(EffnetError, ValueError):
    """A run directory that would be overwritten, is locked by another process, or is not a run."""


class DiskFullError(EffnetError, OSError):
    """A file that could not be written because its disk (or quota) is full; the message names
    the file and the space left. The file's previous content, if any, is intact."""

    exit_code = 1


def close_names(name: str, known: list[str] | tuple[str, ...], n: int = 4) -> list[str]:
    """Known names close to ``name`` (typos, ``-`` for ``_``, case), best first."""
    import difflib

    pool = list(known)
    norm = {k.lower().replace("-", "_"): k for k in pool}
    key = name.lower().replace("-", "_")
    found = [norm[key]] if key in norm and norm[key] != name else []
    for match in difflib.get_close_matches(key, list(norm), n=n, cutoff=0.6):
        if norm[match] not in found and norm[match] != name:
            found.append(norm[match])
    return found[:n]


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` Did you mean a, b?`` or the empty string."""
    close = close_names(name, known)
    return f" Did you mean {', '.join(close)}?" if close else ""
