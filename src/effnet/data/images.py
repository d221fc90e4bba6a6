"""Image files: find them, check them cheaply, and load any of them as an upright RGB picture.

Every consumer (training, ``predict``, ``evaluate``) goes through :func:`load_image`, so one
function owns the odd cases: grayscale and 16-bit files, transparency, palettes, CMYK and
camera rotation stored in EXIF. Grayscale pictures are replicated into three equal channels
because every pretrained stem expects RGB; a 1-channel model converts back in its transform.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "BACKGROUND",
    "IMAGE_EXTENSIONS",
    "UnreadableImageError",
    "check_image",
    "list_images",
    "load_image",
    "to_rgb",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)

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


class UnreadableImageError(OSError):
    """A file that is not a decodable image. Callers catch it to report the path and skip it."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
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
    (``.ipynb_checkpoints``, ``.DS_Store``) are skipped.
    """
    base = Path(root)
    if not base.is_dir():
        raise NotADirectoryError(
            f"expected a directory of images, found {'a file' if base.exists() else 'nothing'} "
            f"at {base}; pass the folder that holds the images"
        )
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(
            Path(dirpath, f)
            for f in filenames
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts
        )
        if not recursive:
            break
    return sorted(found, key=lambda p: p.relative_to(base).as_posix())


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

    Raises :class:`UnreadableImageError` for missing, corrupt, truncated or undecodable files.
    """
    try:
        with Image.open(path) as im:
            im.load()
            im = _upright(im)
            return to_rgb(im, background=background)
    except UnreadableImageError:
        raise
    except _DECODE_ERRORS as err:
        raise UnreadableImageError(path, _reason(err)) from err


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
