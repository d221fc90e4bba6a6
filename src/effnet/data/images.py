"""Image files: find them, decode them once, and load any of them as an upright RGB picture.

Every consumer (training, ``predict``, ``evaluate``) goes through :func:`load_image`, so one
function owns the odd cases: grayscale and 16-bit files, transparency, palettes, CMYK and
camera rotation stored in EXIF. Grayscale pictures are replicated into three equal channels
because every pretrained stem expects RGB; a 1-channel model converts back in its transform.

:class:`DecodedImages` holds what the up-front check decoded, so a run trains on exactly the
pictures that were counted and never decodes them twice.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from effnet.data.scan import (
    IMAGE_EXTENSIONS,
    FolderScan,
    SkippedFile,
    file_kind,
    normalise_extensions,
)
from effnet.errors import EffnetError

__all__ = [
    "BACKGROUND",
    "IMAGE_EXTENSIONS",
    "DecodedImages",
    "SkippedFile",
    "UnreadableImageError",
    "check_image",
    "decode_images",
    "list_images",
    "load_image",
    "to_rgb",
]

BACKGROUND: tuple[int, int, int] = (255, 255, 255)
"""Transparent pixels are composited on white: cut-out objects and scanned documents are shown
on white, and dropping alpha instead would expose whatever colour the editor left under it."""

_GRAY_MODES = ("1", "L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# What PIL raises for bad files: OSError (truncated, decoder errors), SyntaxError (broken PNG
# chunks), ValueError (bad headers), DecompressionBombError (absurd pixel counts).
_DECODE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
)


_MESSAGE = re.compile(r"cannot read image (?P<path>.*?): (?P<reason>.*)\. Expected a decodable")


class UnreadableImageError(EffnetError, OSError):
    """A file that is not a decodable image: the message names it, the reason and the fix.

    Scanning catches it to skip the file with a record; a loader lets it propagate (a file that
    breaks after the up-front check ends the run rather than being replaced by another).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str | None = None) -> None:
        if reason is None:
            # A DataLoader worker re-raises ``type(err)(text)`` where ``text`` holds the
            # worker's whole traceback: keep the original message (its last line) only.
            text = str(path)
            marker = f"{type(self).__name__}: "
            message = text.rsplit(marker, 1)[-1].strip() if marker in text else text.strip()
            match = _MESSAGE.match(message)
            self.path = Path(match["path"]) if match else Path()
            self.reason = match["reason"] if match else message
            super().__init__(message)
            return
        self.path = Path(path)
        self.reason = reason
        super().__init__(
            f"cannot read image {self.path}: {reason}. Expected a decodable image file "
            "(JPEG, PNG, BMP, GIF, TIFF, WebP); re-export the file or remove it from the data."
        )

    def __reduce__(self) -> tuple[type[UnreadableImageError], tuple[Path, str]]:
        # DataLoader workers pickle exceptions back to the main process; the default reduce
        # would call __init__ with the formatted message only.
        return (type(self), (self.path, self.reason))


def list_images(
    root: str | os.PathLike[str],
    *,
    recursive: bool = True,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
) -> list[Path]:
    """Image files under ``root`` (by extension, case-insensitive), sorted by relative path.

    Sorting the relative POSIX path (not ``os.walk`` order, which depends on the file system)
    makes every downstream index, split and seed reproducible across machines. Hidden entries
    (``.ipynb_checkpoints``, ``.DS_Store``, ``._x.jpg``) are ignored; symlinks are followed only
    inside ``root`` and a file reached twice is listed once; FIFOs, devices and empty files are
    never listed (see :mod:`effnet.data.scan`). One warning names what was left out.
    """
    base = Path(root)
    if not base.is_dir():
        raise NotADirectoryError(
            f"expected a directory of images, found {'a file' if base.exists() else 'nothing'} "
            f"at {base}; pass the folder that holds the images"
        )
    scan = FolderScan(base, normalise_extensions(extensions))
    scan.files(base, recursive=recursive)
    found = [p for p, _, _ in scan.resolve()]
    if scan.skipped:
        shown = "; ".join(f"{scan.relpath(s.path)} ({s.reason})" for s in scan.skipped[:5])
        more = f" and {len(scan.skipped) - 5} more" if len(scan.skipped) > 5 else ""
        warnings.warn(
            f"{len(scan.skipped)} image file(s) under {base} not listed: {shown}{more}",
            stacklevel=2,
        )
    return found


def check_image(path: str | os.PathLike[str], *, deep: bool = False) -> str | None:
    """Why ``path`` is not a usable image, or None when it looks fine.

    The default pass opens the header and runs ``Image.verify()`` (PNG chunk CRCs, format
    structure) without decoding pixels: ~0.2 ms a file, cheap enough to run on every dataset
    before training. ``deep=True`` decodes the whole image, which also catches truncated JPEGs.
    """
    try:
        if deep:
            load_image(path)
        else:
            _regular_file(path)
            with Image.open(path) as im:
                im.verify()
    except UnreadableImageError as err:
        return err.reason
    except _DECODE_ERRORS as err:
        return _reason(err)
    return None


def load_image(
    path: str | os.PathLike[str], *, background: tuple[int, int, int] = BACKGROUND
) -> Image.Image:
    """Load ``path`` as an upright 8-bit RGB PIL image, fully decoded (the file is closed).

    Raises :class:`UnreadableImageError` for missing, corrupt, truncated or undecodable files,
    and for anything that is not a regular file (a FIFO would block ``open`` forever).
    """
    try:
        _regular_file(path)
        with Image.open(path) as im:
            im.load()
            im = _upright(im)
            return to_rgb(im, background=background)
    except UnreadableImageError:
        raise
    except _DECODE_ERRORS as err:
        raise UnreadableImageError(path, _reason(err)) from err


def _regular_file(path: str | os.PathLike[str]) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise UnreadableImageError(path, _reason(err)) from err
    if not stat.S_ISREG(mode):
        raise UnreadableImageError(
            path, f"{file_kind(mode)}, not a regular file; only regular files are read"
        )


def to_rgb(im: Image.Image, *, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (see the module docstring for the policy)."""
    if im.mode == "RGB":
        return im
    if im.mode == "P":
        # A palette may carry transparency (a tRNS index); go through RGBA so it is honoured.
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in _GRAY_MODES:
        im = _gray_to_l(im)
    if im.mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        im = Image.alpha_composite(canvas, rgba)
    # CMYK, YCbCr, L, RGBA (now opaque) and the rest: PIL's own conversion.
    return im.convert("RGB")


def _gray_to_l(im: Image.Image) -> Image.Image:
    """Grayscale of any bit depth -> 8-bit ``L``, scaling by the container's range.

    PIL's own ``convert("L")`` clips 16-bit values at 255, which turns most 16-bit pictures
    white. Scaling by the *type's* range (not the picture's min/max) keeps brightness comparable
    across files. Mode ``I`` (32-bit) is what older Pillow returns for 16-bit PNGs, so it is
    read as 16-bit unless its values exceed that range.
    """
    if im.mode in ("1", "L"):
        return im.convert("L")
    arr = np.asarray(im)
    if im.mode == "F":
        # Float images are conventionally [0, 1]; anything wider is treated as 8-bit values.
        scale = 255.0 if float(arr.max(initial=0.0)) <= 1.0 else 1.0
        arr = arr.astype(np.float64) * scale
    elif im.mode.startswith("I;16") or int(arr.max(initial=0)) <= 65535:
        arr = arr.astype(np.float64) / 257.0  # 65535 -> 255
    else:
        arr = arr.astype(np.float64) / float(arr.max()) * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def _upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except Exception as err:  # broken EXIF blocks raise many different error types
        # Orientation is a nicety: a picture with a damaged EXIF block is still a picture.
        warnings.warn(f"ignoring unreadable EXIF orientation ({_reason(err)})", stacklevel=3)
        return im


def _reason(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if type(err).__name__ in text else f"{type(err).__name__}: {text}"


def default_cache_bytes() -> int:
    """How much decoded pixel data a run keeps by default: a quarter of the machine's memory,
    at most 16 GiB (ELPV's 2,624 cells at 300x300 RGB take 0.7 GB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 8 << 30
    return int(min(total // 4, 16 << 30))


class DecodedImages:
    """Decoded images kept in memory, keyed by path: a drop-in ``loader`` for a dataset.

    Calling it returns a *copy* of the kept picture (transforms must not edit the original), or
    decodes a path it does not hold (and keeps it while within ``max_bytes``). A file that
    cannot be decoded raises :class:`UnreadableImageError`: nothing is ever substituted.

    :func:`~effnet.data.sources.load_source` (``keep_images=True``) fills one with everything
    its up-front check decoded. Decode in the main process before starting DataLoader workers:
    forked workers share the pictures copy-on-write, while a worker's own additions die with it
    at the end of every epoch.
    """

    def __init__(self, max_bytes: int | None = None, max_side: int | None = None) -> None:
        self.max_bytes = default_cache_bytes() if max_bytes is None else int(max_bytes)
        self.max_side = max_side
        """Shrink a picture whose short side is longer, once, when it is kept (runs that train
        at 32-200 px, like the scaling lab's trials, need not hold 300 px originals)."""
        self.nbytes = 0
        self._memo: dict[str, Image.Image] = {}
        self.prepared: OrderedDict[Any, Any] = OrderedDict()
        """Pictures through a pipeline's deterministic steps, per set and size
        (:func:`effnet.data.prepared.prepared_images` fills it)."""
        self.prepared_budget = self.max_bytes
        """Bytes those prepared tensors may take together (the least recently used go first)."""

    def __len__(self) -> int:
        return len(self._memo)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.fspath(path) in self._memo

    def keep(self, path: str | os.PathLike[str], image: Image.Image) -> bool:
        """Hold ``image`` for ``path`` if it fits the budget; whether it was kept."""
        key = os.fspath(path)
        if key in self._memo:
            return True
        image = _compact(self._shrink(image))
        size = _nbytes(image)
        if self.nbytes + size > self.max_bytes:
            return False
        self._memo[key] = image
        self.nbytes += size
        return True

    def __call__(self, path: str | os.PathLike[str]) -> Image.Image:
        key = os.fspath(path)
        image = self._memo.get(key)
        if image is None:
            fresh = load_image(path)
            if not self.keep(path, fresh):
                return self._shrink(fresh)
            image = self._memo[key]
        # a copy: transforms must not edit the kept picture
        return image.convert("RGB") if image.mode == "L" else image.copy()

    def peek(self, path: str | os.PathLike[str]) -> Image.Image:
        """The kept picture itself (decoded now if not held): read it, never edit it."""
        image = self._memo.get(os.fspath(path))
        return image if image is not None else _compact(self._shrink(load_image(path)))

    def mode_of(self, path: str | os.PathLike[str]) -> str:
        """The kept picture's mode: ``L`` for a grayscale one, else ``RGB``."""
        return self.peek(path).mode

    def _shrink(self, image: Image.Image) -> Image.Image:
        short = min(image.size)
        if self.max_side is None or short <= self.max_side:
            return image
        w, h = image.size
        size = (round(w * self.max_side / short), round(h * self.max_side / short))
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)

    def prefill(
        self, paths: Sequence[str | os.PathLike[str]], progress: bool = False
    ) -> list[SkippedFile]:
        """Decode the ``paths`` not held yet (in threads); the files that failed, with why."""
        todo = [Path(p) for p in paths if os.fspath(p) not in self._memo]
        return decode_images(todo, images=self, progress=progress)


def _compact(image: Image.Image) -> Image.Image:
    """A grayscale picture (three equal channels, as :func:`to_rgb` makes them) kept as one
    ``L`` channel: a third of the memory, and ``convert("RGB")`` restores it exactly."""
    if image.mode == "RGB":
        r, g, b = image.split()
        if r.tobytes() == g.tobytes() == b.tobytes():
            return r
    return image


def _nbytes(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())


def decode_images(
    paths: Sequence[str | os.PathLike[str]],
    *,
    images: DecodedImages | None = None,
    progress: bool = False,
    desc: str = "decode",
) -> list[SkippedFile]:
    """Decode every file with :func:`load_image` (the loader's own function, so what passes
    here is what trains), in a few threads (Pillow's decoders release the GIL), with a tqdm bar.

    Returns the files that failed with their reasons; with ``images`` the decoded pictures are
    kept there (within its budget), otherwise dropped at once.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    def one(path: str | os.PathLike[str]) -> Image.Image | str:
        try:
            return load_image(path)
        except UnreadableImageError as err:
            return err.reason

    failed: list[SkippedFile] = []
    threads = max(1, min(8, os.cpu_count() or 1, len(paths)))
    with (
        ThreadPoolExecutor(threads, thread_name_prefix="effnet-decode") as pool,
        tqdm(
            total=len(paths),
            desc=desc,
            unit="img",
            leave=False,
            disable=None if progress else True,
        ) as bar,
    ):
        for path, result in zip(paths, pool.map(one, paths)):
            bar.update(1)
            if isinstance(result, str):
                failed.append(SkippedFile(Path(path), result))
            elif images is not None:
                images.keep(path, result)
    return failed
