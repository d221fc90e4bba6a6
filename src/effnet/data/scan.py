"""Finding image files in a folder tree so that what is found is exactly what a run should use.

Rules, each one a case that once produced a wrong dataset:

* **Symlinks are followed only inside the dataset root, and a folder is never entered twice.**
  ``red/loop -> ..`` once turned 20 files into 820 samples with the same files in train and
  test; a link to ``/`` would scan the whole disk.
* **A file is used once**, however many paths reach it (hard links, symlinks, a folder linked
  twice). Copies in one class keep the real path (else the first in sorted order); a file
  reached from two classes has no single label and is dropped everywhere.
* **Regular files only.** A FIFO named ``x.jpg`` blocks the first ``open()`` forever, a device
  file reads forever: they are never opened.
* **Hidden entries are not data** (``.DS_Store``, macOS ``._x.jpg`` resource forks,
  ``.ipynb_checkpoints``); they and files without an image suffix are counted, not listed.

Everything dropped for a reason a user may need to act on is returned as a
:class:`SkippedFile` (path, reason) so it can be reported; nothing is dropped silently.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["IMAGE_EXTENSIONS", "FolderScan", "SkippedFile", "normalise_extensions"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


class SkippedFile(NamedTuple):
    """A file (or folder) left out of the data, and why (a sentence naming the fix)."""

    path: Path
    reason: str
    label: str | None = None
    """The class it would have had, when known (the report groups by it)."""


def normalise_extensions(extensions: Iterable[str]) -> frozenset[str]:
    return frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)


def file_kind(mode: int) -> str:
    """``"a FIFO"``, ``"a socket"``, ... for a non-regular ``st_mode``."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _why(err: OSError) -> str:
    return err.strerror or type(err).__name__


@dataclass
class _Found:
    path: Path
    ident: tuple[int, int]
    label: str | None
    rank: int
    """Preference when one file is reached twice: lower wins (train before val before test)."""
    via_link: bool


@dataclass
class FolderScan:
    """One scan of a dataset: the root symlinks must stay in, and what was seen so far.

    Scan each folder that contributes samples with :meth:`files` (a class folder, or the top
    folder for a flat listing), then call :meth:`resolve` once: it drops the second and later
    paths to the same file and returns every kept path per folder, sorted.
    """

    root: Path
    extensions: frozenset[str] = IMAGE_EXTENSIONS
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored: dict[str, dict[str, Any]] = field(default_factory=dict)
    """reason -> {"count": n, "examples": [first few paths]}: hidden and non-image files."""

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._real_root = os.path.realpath(self.root)
        self._visited: set[tuple[int, int]] = set()
        self._found: list[_Found] = []
        try:
            st = os.stat(self.root)
            self._visited.add((st.st_dev, st.st_ino))
        except OSError:
            pass

    # -- walking --------------------------------------------------------------------------

    def subdirs(self, folder: Path) -> list[Path]:
        """The visible sub-folders of ``folder`` (class or split folders), sorted by name.

        Raises ``OSError`` when ``folder`` cannot be listed (the caller names the fix). A
        sub-folder that is a symlink leading outside the root is recorded and left out.
        """
        out = []
        for entry in self._entries(folder):
            path = Path(folder, entry.name)
            if entry.name.startswith((".", "__")):  # .ipynb_checkpoints, __MACOSX
                self._ignore("hidden", path)
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if not is_dir:
                if os.path.splitext(entry.name)[1].lower() in self.extensions:
                    self._ignore("image outside the class folders", path)
                continue
            if entry.is_symlink() and not self._link_allowed(path, "folder"):
                continue
            out.append(path)
        for path in out:  # class folders are scanned on their own: never again through a link
            self._mark(path)
        return out

    def files(
        self, folder: Path, *, label: str | None = None, rank: int = 0, recursive: bool = True
    ) -> int:
        """Collect the image files under ``folder`` for ``label``; how many were found.

        A folder that cannot be listed is recorded as skipped (its class may end up empty,
        which the caller reports with this reason).
        """
        before = len(self._found)
        self._walk(Path(folder), label, rank, recursive, via_link=False)
        return len(self._found) - before

    def add_file(self, path: Path, *, label: str | None = None, rank: int = 0) -> bool:
        """Check one named file (a CSV row): regular, non-empty, not a duplicate (at
        :meth:`resolve`). Returns False (and records why) when it is left out."""
        try:
            st = os.stat(path)
        except OSError as err:
            self._skip(path, f"cannot read it ({_why(err)})", label)
            return False
        return self._accept(path, st, label, rank, via_link=os.path.islink(path))

    def _entries(self, folder: Path) -> list[os.DirEntry[str]]:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)

    def _walk(
        self, folder: Path, label: str | None, rank: int, recursive: bool, via_link: bool
    ) -> None:
        try:
            entries = self._entries(folder)
        except OSError as err:
            self._skip(
                folder,
                f"cannot list this folder ({_why(err)}); make it readable (chmod -R u+rX) "
                "or remove it",
                label,
            )
            return
        real: list[tuple[Path, os.stat_result]] = []
        linked: list[tuple[Path, os.stat_result]] = []
        for entry in entries:
            path = Path(folder, entry.name)
            suffix = os.path.splitext(entry.name)[1].lower()
            if entry.name.startswith("."):
                self._ignore("hidden", path)
                continue
            is_link = entry.is_symlink()
            try:
                st = os.stat(path)  # follows symlinks, never opens the file
            except OSError as err:
                if suffix in self.extensions or not is_link:
                    what = "broken symlink (its target is missing or a loop)" if is_link else ""
                    self._skip(path, what or f"cannot read it ({_why(err)})", label)
                else:
                    self._ignore("broken symlink", path)
                continue
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    # real folders first: a link to one of them is then the second path
                    (linked if is_link else real).append((path, st))
                continue
            if suffix not in self.extensions:
                self._ignore(f"not an image ({suffix or 'no suffix'})", path)
                continue
            if is_link and not self._link_allowed(path, "file", label):
                continue
            self._accept(path, st, label, rank, via_link or is_link)
        for path, st in real:
            self._enter(path, st, label, rank, via_link, is_link=False)
        for path, st in linked:
            self._enter(path, st, label, rank, via_link, is_link=True)

    def _enter(
        self,
        path: Path,
        st: os.stat_result,
        label: str | None,
        rank: int,
        via_link: bool,
        is_link: bool,
    ) -> None:
        if is_link and not self._link_allowed(path, "folder", label):
            return
        ident = (st.st_dev, st.st_ino)
        if (via_link or is_link) and ident in self._visited:
            target = os.path.relpath(os.path.realpath(path), self._real_root)
            self._skip(
                path,
                f"symlink to a folder already scanned ({target}); not followed twice "
                "(a link loop or a second path to the same images)",
                label,
            )
            return
        self._visited.add(ident)
        self._walk(path, label, rank, True, via_link=via_link or is_link)

    def _accept(
        self, path: Path, st: os.stat_result, label: str | None, rank: int, via_link: bool
    ) -> bool:
        if not stat.S_ISREG(st.st_mode):
            kind = file_kind(st.st_mode)
            self._skip(path, f"{kind}, not a regular file; only regular files are read", label)
            return False
        if st.st_size == 0:
            self._skip(path, "empty file (0 bytes); re-copy or re-export it", label)
            return False
        self._found.append(_Found(path, (st.st_dev, st.st_ino), label, rank, via_link))
        return True

    def _link_allowed(self, path: Path, what: str, label: str | None = None) -> bool:
        target = os.path.realpath(path)
        if _inside(target, self._real_root):
            return True
        self._skip(
            path,
            f"symlink to a {what} outside the dataset root ({target}); effnet follows links "
            f"only inside {self.root}: copy the {what} in, or pass a folder that contains it",
            label,
        )
        return False

    def _mark(self, folder: Path) -> None:
        try:
            st = os.stat(folder)
        except OSError:
            return
        self._visited.add((st.st_dev, st.st_ino))

    def _skip(self, path: Path, reason: str, label: str | None) -> None:
        self.skipped.append(SkippedFile(Path(path), reason, label))

    def _ignore(self, reason: str, path: Path) -> None:
        slot = self.ignored.setdefault(reason, {"count": 0, "examples": []})
        slot["count"] += 1
        if len(slot["examples"]) < 3:
            slot["examples"].append(self.relpath(path))

    # -- results --------------------------------------------------------------------------

    def relpath(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def resolve(
        self,
        describe: Callable[[_Found], str] | None = None,
        on_conflict: Callable[[list[_Found]], None] | None = None,
    ) -> list[tuple[Path, str | None, int]]:
        """Every kept ``(path, label, rank)``, one per file, sorted by path relative to the root.

        ``describe(found) -> str`` names a duplicate's first occurrence in its reason (default:
        its path relative to the root; CSV sources pass the line number). ``on_conflict(group)``
        is called for a file reached under two labels (it may raise); by default all of its
        paths are skipped.
        """
        name = describe or (lambda f: self.relpath(f.path))
        groups: dict[tuple[int, int], list[_Found]] = {}
        for f in self._found:
            groups.setdefault(f.ident, []).append(f)
        kept: list[_Found] = []
        for group in groups.values():
            if len(group) == 1:
                kept.append(group[0])
                continue
            group.sort(key=lambda f: (f.rank, f.via_link, self.relpath(f.path)))
            labels = {f.label for f in group}
            if len(labels) > 1:
                if on_conflict is not None:
                    on_conflict(group)
                for f in group:
                    others = ", ".join(f"{name(o)} ({o.label})" for o in group if o is not f)
                    self._skip(
                        f.path,
                        f"the same file is also {others} (a hard link or symlink) under "
                        f"another class, so its label is ambiguous; keep one copy in the "
                        f"right class",
                        f.label,
                    )
                continue
            first = group[0]
            kept.append(first)
            for f in group[1:]:
                self._skip(
                    f.path,
                    f"same file as {name(first)} (a hard link, symlink or repeated entry); "
                    "each file is used once",
                    f.label,
                )
        kept.sort(key=lambda f: self.relpath(f.path))
        return [(f.path, f.label, f.rank) for f in kept]
