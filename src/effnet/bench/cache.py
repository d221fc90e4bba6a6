"""A cache of latency measurements, keyed by hardware and library versions.

One JSON file per :func:`~effnet.bench.hardware.fingerprint`
(``<cache>/bench/measurements-<key>.json``), so a new CPU, a torch or ONNX Runtime upgrade or a
new effnet release starts from an empty cache instead of trusting stale numbers, while machines
sharing a home directory do not overwrite each other. Files are written atomically (temporary
file + ``os.replace``). A cache that cannot be written (read-only, full disk, a file in the way)
only costs the next run its measurements: one warning, and the values stay in memory.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from effnet.bench.hardware import fingerprint, fingerprint_key
from effnet.files import write_text

__all__ = ["MeasurementCache", "cache_dir", "measurement_key"]


def cache_dir() -> Path:
    """``$EFFNET_CACHE``, else ``$XDG_CACHE_HOME/effnet``, else ``~/.cache/effnet``."""
    if os.environ.get("EFFNET_CACHE"):
        return Path(os.environ["EFFNET_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "effnet"


def measurement_key(**fields: Any) -> str:
    """A stable key for one measurement setting (model, runtime, batch, resolution, ...)."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


class MeasurementCache:
    """Measurements of this machine + library versions; stale fingerprints are never read."""

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, fp: dict[str, Any] | None = None
    ) -> None:
        self.fingerprint = fp or fingerprint()
        self.key = fingerprint_key(self.fingerprint)
        self.directory = Path(directory) if directory is not None else cache_dir() / "bench"
        self.path = self.directory / f"measurements-{self.key}.json"
        self._entries: dict[str, Any] | None = None
        self._unwritable = False

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            self._entries = {}
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            # the file name already encodes the fingerprint; the check guards hash collisions
            # and hand-copied files
            if isinstance(data, dict) and data.get("fingerprint") == self.fingerprint:
                self._entries = dict(data.get("entries", {}))
        return self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._load().get(key)
        return dict(entry) if isinstance(entry, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store one measurement and write the file atomically (in memory only, with one
        warning, when the cache cannot be written)."""
        entries = self._load()
        if self._unwritable:
            self._entries = {**entries, key: value}
            return
        # re-read so concurrent writers lose as little as possible (last writer wins per key)
        self._entries = None
        entries = {**entries, **self._load(), key: value}
        self._entries = entries
        try:
            self._write(entries)
        except OSError as err:
            self._unwritable = True
            warnings.warn(
                f"cannot write the measurement cache {self.path} ({err.strerror or err}); "
                "measurements are kept for this run only. Set EFFNET_CACHE to a writable folder "
                "to reuse them next time.",
                stacklevel=2,
            )

    def _write(self, entries: dict[str, Any]) -> None:
        text = json.dumps({"fingerprint": self.fingerprint, "entries": entries}, indent=1,
                          sort_keys=True)  # fmt: skip
        write_text(self.path, text)

    def __len__(self) -> int:
        return len(self._load())
