"""One entry point for training data: ``load_source(src)`` -> validated, split, recorded.

``src`` is one of

* a folder ``root/<class>/*.jpg`` (ImageFolder layout), split here;
* a folder with ``train/``, ``val/`` (or ``valid/``, ``validation/``) and/or ``test/``, each in
  ImageFolder layout, used as given (a missing ``val/`` is carved from ``train/``);
* a CSV file of ``path,label[,split]`` rows (header optional; paths relative to the CSV's
  folder), split here unless it has a split column;
* ``"elpv"``: the ELPV solar-cell set shipped by the ``elpv-dataset`` package, read in place.

Folders are scanned by :class:`~effnet.data.scan.FolderScan` (symlinks only inside the root,
each file once, regular files only) and every image is then decoded once
(:func:`~effnet.data.datasets.validate_set`), so what is counted is what trains. Everything
that would make a run fail late or silently (a class left empty, one class, a class too small
for the split, a missing file, an unrecognised CSV header, a val/test label unseen in train)
raises :class:`~effnet.data.datasets.DataSourceError` here, before any training; every file
left out is listed with its reason in ``SourceSplits.to_dict()`` (the run's ``data.json``).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet.data.datasets import (
    DataSourceError,
    LabelledSet,
    Sample,
    ValidationReport,
    validate_set,
    warn_skipped,
)
from effnet.data.images import DecodedImages
from effnet.data.scan import IMAGE_EXTENSIONS, FolderScan
from effnet.data.splits import SPLIT_NAMES, SplitFractions, split_record, stratified_split
from effnet.errors import did_you_mean

__all__ = ["ELPV_CLASSES", "LABEL_MODES", "SourceSplits", "elpv_root", "load_source"]

LABEL_MODES = ("4class", "binary")
ELPV_CLASSES: dict[str, tuple[str, ...]] = {
    # Defect probability 0, 1/3, 2/3, 1 as a percentage: readable and safe in file names.
    "4class": ("p0", "p33", "p67", "p100"),
    # Deitsch et al. call cells with probability >= 0.5 defective.
    "binary": ("functional", "defective"),
}
_SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
_PATH_COLUMNS = ("path", "file", "filename", "filepath", "image", "image_path")
_LABEL_COLUMNS = ("label", "class", "target", "category")


@dataclass
class SourceSplits:
    """What :func:`load_source` returns: the splits, the skipped files and the split record."""

    source: str
    kind: str
    """``"folder"``, ``"split-folders"``, ``"csv"`` or ``"elpv"``."""
    classes: tuple[str, ...]
    train: LabelledSet
    val: LabelledSet | None
    test: LabelledSet | None
    validation: ValidationReport
    record: dict[str, Any]
    """JSON-serialisable split record (see :func:`~effnet.data.splits.split_record`)."""
    label_mode: str | None = None
    images: DecodedImages | None = None
    """With ``load_source(keep_images=True)``: the pictures the up-front check decoded, a
    ``loader`` for :class:`~effnet.data.datasets.ImageDataset` (not part of :meth:`to_dict`)."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_skipped(self) -> int:
        """Files left out by scanning and decoding: report this with the run."""
        return self.validation.num_skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "label_mode": self.label_mode,
            "classes": list(self.classes),
            "validation": self.validation.to_dict(),
            "split": self.record,
        }


def load_source(
    src: str | Path,
    *,
    label_mode: str | None = None,
    fractions: SplitFractions | None = None,
    seed: int = 0,
    validate: bool = True,
    deep: bool = True,
    keep_images: bool | DecodedImages = False,
    progress: bool = True,
) -> SourceSplits:
    """Load, check and split ``src`` (see the module docstring for the forms).

    ``label_mode`` (``"4class"`` default, or ``"binary"``) applies to ``"elpv"`` only.
    ``fractions`` (default 70/15/15) and ``seed`` drive the stratified split of a single set.
    ``validate`` decodes every file once (a tqdm bar with ``progress``); files that fail are
    left out and listed in ``result.validation`` with their reasons. ``keep_images`` keeps the
    decoded pictures in ``result.images`` (within a memory budget) for the run's loaders; pass
    a :class:`~effnet.data.images.DecodedImages` to choose its budget or ``max_side``.
    ``deep`` is accepted for compatibility: validation always decodes.
    """
    del deep
    fractions = fractions or SplitFractions()
    text = str(src)
    given, kind, scanned, mode = _read_sets(src, label_mode)
    if isinstance(keep_images, DecodedImages):
        images: DecodedImages | None = keep_images
    else:
        images = DecodedImages() if keep_images else None
    report = _checked(given, scanned, text, images, validate, progress)
    parts, record = _split(given, fractions, seed, text)
    train = parts["train"]
    assert train is not None  # stratified_split always fills train (fraction > 0)
    return SourceSplits(
        text, kind, train.classes, train, parts["val"], parts["test"], report, record, mode,
        images,
    )  # fmt: skip


def _read_sets(
    src: str | Path, label_mode: str | None
) -> tuple[dict[str, LabelledSet], str, ValidationReport, str | None]:
    """The sets ``src`` holds (``"all"`` for one to split, else train/val/test as given), its
    kind, what scanning left out, and the ELPV label mode."""
    text = str(src)
    if text.lower() == "elpv":
        mode = label_mode or "4class"
        return {"all": _elpv_set(mode)}, "elpv", ValidationReport(), mode
    if label_mode is not None:
        raise DataSourceError(
            f"label_mode applies to the 'elpv' source only, got label_mode={label_mode!r} "
            f"for {text}; drop it (folder and CSV labels are used as they are)"
        )
    path = Path(src).expanduser()
    if path.is_dir():
        given, kind, scanned = _folder_sets(path)
        return given, kind, scanned, None
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt"):
        given, scanned = _csv_sets(path)
        return given, "csv" if set(given) == {"all"} else "csv-splits", scanned, None
    found = "a file of another type" if path.exists() else "nothing"
    near = "" if path.exists() else did_you_mean(text, ("elpv",))
    raise DataSourceError(
        f"expected a data source: a folder root/<class>/<images>, a CSV of path,label "
        f"rows, or 'elpv'; found {found} at {path}.{near}"
    )


def _checked(
    given: dict[str, LabelledSet],
    scanned: ValidationReport,
    source: str,
    images: DecodedImages | None,
    validate: bool,
    progress: bool,
) -> ValidationReport:
    """Decode every file once (``validate``), leaving out and reporting those that fail, then
    refuse sets that cannot train (see the module docstring)."""
    report = scanned
    if validate:
        for name, part in given.items():
            given[name], rep = validate_set(part, images=images, progress=progress, warn=False)
            report = report.merge(rep)
    warn_skipped(report.skipped, report.checked)
    _warn_near_duplicate_classes(next(iter(given.values())).classes, source)
    for name, part in given.items():
        _check_set(part, name if name != "all" else "the data", source, report)
    return report


def _split(
    given: dict[str, LabelledSet], fractions: SplitFractions, seed: int, source: str
) -> tuple[dict[str, LabelledSet | None], dict[str, Any]]:
    """train/val/test and their record: one set split stratified, or the given splits (a
    missing val carved from train)."""
    if "all" in given:
        splits = stratified_split(given["all"], fractions, seed=seed)
        parts: dict[str, LabelledSet | None] = {
            k: (v if len(v) else None) for k, v in splits.items()
        }
        record = split_record(
            parts, mode="stratified", seed=seed, fractions=fractions, source=source
        )
        return parts, record
    parts = {k: given.get(k) for k in SPLIT_NAMES}
    carved = parts["val"] is None and fractions.val > 0
    if carved:
        # A val set drives early stopping and model selection; take it from train, never test.
        inner = stratified_split(
            given["train"], SplitFractions(val=fractions.val, test=0.0), seed=seed
        )
        parts["train"], parts["val"] = inner["train"], inner["val"]
    record = split_record(
        parts,
        mode="given",
        seed=seed if carved else None,
        fractions=SplitFractions(val=fractions.val, test=0.0) if carved else None,
        source=source,
    )
    return parts, record


def _warn_near_duplicate_classes(classes: tuple[str, ...], source: str) -> None:
    """``Cat`` and ``cat`` (or ``cat_`` and ``cat-``) are two classes: almost always a typo."""
    groups: dict[str, list[str]] = {}
    for c in classes:
        groups.setdefault(re.sub(r"[\s_-]+", "", c.casefold()), []).append(c)
    clashes = [g for g in groups.values() if len(g) > 1]
    if clashes:
        warnings.warn(
            f"{source}: classes {clashes} differ only in case, spaces or '_'/'-' and are "
            "trained as different classes; rename the folders (or CSV labels) if they are one",
            stacklevel=3,
        )


def _check_set(part: LabelledSet, where: str, source: str, report: ValidationReport) -> None:
    if len(part.classes) < 2:
        raise DataSourceError(
            f"{source}: classification needs at least 2 classes, found {len(part.classes)} "
            f"({list(part.classes)}); add a folder (or CSV label) per class"
        )
    empty = [c for c, n in zip(part.classes, part.class_counts) if n == 0]
    if not empty:
        return
    if where in ("val", "test"):
        # Evaluation still works without a class (its recall is just undefined); training
        # without one cannot, so only train (or the unsplit set) is fatal.
        warnings.warn(f"{source}: class(es) {empty} have no images in {where}", stacklevel=3)
        return
    why = []
    for name in empty:
        left_out = [s for s in report.skipped if s.label == name]
        if left_out:
            first = left_out[0]
            why.append(
                f"{name!r}: {len(left_out)} file(s) left out, e.g. {first.path}: {first.reason}"
            )
    detail = f" ({'; '.join(why)})" if why else ""
    raise DataSourceError(
        f"{source}: class(es) {empty} have no readable images in {where}{detail}; replace or "
        "fix those files, or remove the class (data.json lists every file left out and why)"
    )


# -- folders ------------------------------------------------------------------------------------


def _subdirs(scan: FolderScan, folder: Path) -> list[Path]:
    try:
        return scan.subdirs(folder)
    except OSError as err:
        raise DataSourceError(
            f"cannot list {folder} ({err.strerror or err}); make it readable "
            f"(chmod -R u+rX {folder}) or pass another folder"
        ) from err


def _folder_sets(root: Path) -> tuple[dict[str, LabelledSet], str, ValidationReport]:
    scan = FolderScan(root)
    dirs = _subdirs(scan, root)
    split_dirs = [d for d in dirs if d.name.lower() in _SPLIT_ALIASES]
    if not any(d.name.lower() == "train" for d in split_dirs):
        layout = {"all": (0, _scan_classes(scan, root, 0, dirs))}
    else:
        if len(split_dirs) != len(dirs):
            others = [d.name for d in dirs if d not in split_dirs]
            raise DataSourceError(
                f"{root}: found a train/ folder next to other folders {others}; expected either "
                "only train/, val/, test/ (each root/<class>/...) or only class folders"
            )
        layout = {}
        for d in split_dirs:
            name = _SPLIT_ALIASES[d.name.lower()]
            if name in layout:
                raise DataSourceError(f"{root}: more than one folder for split {name!r}; keep one")
            # a file linked into two splits stays in the earlier one (train, then val, test)
            rank = SPLIT_NAMES.index(name)
            layout[name] = (rank, _scan_classes(scan, d, rank))
        classes = layout["train"][1]
        for name, (_, part_classes) in layout.items():
            if part_classes != classes:
                unseen = sorted(set(part_classes) - set(classes))
                absent = sorted(set(classes) - set(part_classes))
                raise DataSourceError(
                    f"{root}: the class folders of {name}/ differ from train/: unseen in train "
                    f"{unseen}, missing from {name}/ {absent}; every split needs the same classes"
                )
    kept = scan.resolve()
    sets: dict[str, LabelledSet] = {}
    for name, (rank, classes) in layout.items():
        index = {c: i for i, c in enumerate(classes)}
        samples = tuple((p, index[str(y)]) for p, y, r in kept if r == rank)
        # Paths stay relative to the top folder so the record tells train/x.png from test/x.png.
        sets[name] = LabelledSet(samples, classes, root)
    report = ValidationReport(skipped=scan.skipped, ignored=scan.ignored)
    if set(sets) in ({"all"}, {"train"}):
        return {"all": next(iter(sets.values()))}, "folder", report
    return sets, "split-folders", report


def _scan_classes(
    scan: FolderScan, folder: Path, rank: int = 0, class_dirs: list[Path] | None = None
) -> tuple[str, ...]:
    class_dirs = _subdirs(scan, folder) if class_dirs is None else class_dirs
    if not class_dirs:
        loose = FolderScan(folder)
        loose.files(folder, recursive=False)
        raise DataSourceError(
            f"{folder}: expected one sub-folder per class (root/<class>/<images>), found no "
            f"sub-folders ({len(loose.resolve())} image(s) directly in it); move images into "
            "class folders"
        )
    for d in class_dirs:
        skipped_before = len(scan.skipped)
        if not scan.files(d, label=d.name, rank=rank) and len(scan.skipped) == skipped_before:
            raise DataSourceError(
                f"class folder {d} has no image files (expected "
                f"{'/'.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the folder"
            )
    return tuple(d.name for d in class_dirs)


# -- CSV ----------------------------------------------------------------------------------------


def _natural_key(text: str) -> tuple[Any, ...]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)], text)


def _read_csv_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataSourceError(
            f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); expected a CSV of "
            "path,label rows: save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)"
        ) from err
    except OSError as err:
        raise DataSourceError(
            f"cannot read {path} ({err.strerror or err}); make it readable (chmod u+r)"
        ) from err


def _csv_rows(path: Path) -> list[tuple[int, str, str, str | None]]:
    """(line number, path, label, split) per row; header optional, but recognised if present."""
    text = _read_csv_text(path)
    try:
        try:
            dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        lines = text.splitlines()
        rows = [(n, [c.strip() for c in r]) for n, r in enumerate(csv.reader(lines, dialect), 1)]
    except csv.Error as err:
        raise DataSourceError(
            f"{path}: not a readable CSV ({err}); expected rows of path,label[,split]"
        ) from err
    rows = [(n, r) for n, r in rows if any(r)]
    if not rows:
        raise DataSourceError(f"{path}: the CSV is empty; expected rows of path,label")
    first = rows[0][1]
    cols = [c.lower() for c in first]
    ip, il, isplit = 0, 1, 2
    accepted = (
        f"a path column (one of {', '.join(_PATH_COLUMNS)}) and a label column (one of "
        f"{', '.join(_LABEL_COLUMNS)}), optionally a split column"
    )
    if any(c in _PATH_COLUMNS or c in _LABEL_COLUMNS for c in cols):
        try:
            ip = next(i for i, c in enumerate(cols) if c in _PATH_COLUMNS)
            il = next(i for i, c in enumerate(cols) if c in _LABEL_COLUMNS)
        except StopIteration:
            raise DataSourceError(
                f"{path}: header {first} needs {accepted}.{_near_columns(cols)} Rename the columns"
            ) from None
        isplit = cols.index("split") if "split" in cols else -1
        rows = rows[1:]
        if not rows:
            raise DataSourceError(
                f"{path}: the CSV has a header but no rows; add rows of path,label"
            )
    elif _looks_like_header(first, path.parent):
        raise DataSourceError(
            f"{path}: the first row {first} is not a header effnet knows, nor a row of "
            f"path,label (no such image file).{_near_columns(cols)} A header needs "
            f"{accepted}; rename the columns, or delete the header (rows of path,label[,split] "
            "are read without one)"
        )
    out = []
    for n, r in rows:
        if len(r) <= max(ip, il) or not r[ip] or not r[il]:
            raise DataSourceError(
                f"{path}, line {n}: expected path,label[,split], found {r}; fix or delete the row"
            )
        split = r[isplit] if 0 <= isplit < len(r) and r[isplit] else None
        out.append((n, r[ip], r[il], split))
    return out


def _near_columns(cols: list[str]) -> str:
    known = (*_PATH_COLUMNS, *_LABEL_COLUMNS, "split")
    hints = [did_you_mean(c, known) for c in cols if c not in known]
    return "".join(h for h in hints if h)


def _looks_like_header(row: list[str], root: Path) -> bool:
    """A first row that names no existing file and has no image suffix is a header."""
    cell = row[0]
    if os.path.splitext(cell)[1].lower() in IMAGE_EXTENSIONS:
        return False
    return not os.path.isfile(root / Path(cell).expanduser())


def _csv_sets(path: Path) -> tuple[dict[str, LabelledSet], ValidationReport]:
    rows = _csv_rows(path)
    root = path.parent
    files = {n: root / Path(p).expanduser() for n, p, _, _ in rows}
    missing = [(n, p) for n, p, _, _ in rows if not os.path.lexists(files[n])]
    if missing:
        shown = ", ".join(f"line {n}: {p}" for n, p in missing[:5])
        raise DataSourceError(
            f"{path}: {len(missing)} row(s) point to missing files ({shown}); paths are "
            f"relative to {root}; fix the paths or remove the rows"
        )
    splits = {s for *_, s in rows}
    if splits != {None}:
        bad = sorted({str(s) for s in splits if s is None or s.lower() not in _SPLIT_ALIASES})
        if bad:
            raise DataSourceError(
                f"{path}: split column values must be train/val/test on every row, found {bad}"
            )
    scan = FolderScan(root)
    for n, _, y, _ in rows:
        scan.add_file(files[n], label=y, rank=n)  # rank = line: the first row naming a file wins

    def clash(group: list[Any]) -> None:
        lines = ", ".join(f"line {f.rank} ({f.label!r})" for f in group)
        raise DataSourceError(
            f"{path}: {lines} name the same file {group[0].path} with different labels; keep "
            "the row with the right label and delete the others"
        )

    kept = scan.resolve(describe=lambda f: f"line {f.rank}", on_conflict=clash)
    split_of = {n: s for n, _, _, s in rows}
    if splits == {None}:
        groups: dict[str, list[tuple[Path, str]]] = {"all": [(p, str(y)) for p, y, _ in kept]}
    else:
        groups = {}
        for p, y, n in kept:
            groups.setdefault(_SPLIT_ALIASES[str(split_of[n]).lower()], []).append((p, str(y)))
        if "train" not in groups:
            raise DataSourceError(f"{path}: the split column names no 'train' rows; add some")
        seen = {y for _, y in groups["train"]}
        for name, items in groups.items():
            unseen = sorted({y for _, y in items} - seen)
            if unseen:
                raise DataSourceError(
                    f"{path}: labels {unseen} appear in {name} but never in train; a model "
                    "cannot learn them: add train rows for them or drop those rows"
                )
    classes = tuple(sorted({y for *_, y, _ in rows}, key=_natural_key))
    index = {c: i for i, c in enumerate(classes)}
    sets = {
        name: LabelledSet(tuple((p, index[y]) for p, y in items), classes, root)
        for name, items in groups.items()
    }
    return sets, ValidationReport(skipped=scan.skipped, ignored=scan.ignored)


# -- ELPV ---------------------------------------------------------------------------------------


def elpv_root() -> Path:
    """The installed ``elpv_dataset/data`` folder (``labels.csv`` + ``images/``), not copied."""
    spec = importlib.util.find_spec("elpv_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise DataSourceError(
            "the 'elpv' source needs the elpv-dataset package, which is not installed; run "
            "`pip install elpv-dataset` (or `pip install 'effnet[elpv]'`)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (root / "labels.csv").is_file():
        raise DataSourceError(
            f"expected {root / 'labels.csv'} in the elpv-dataset package, found none; "
            "reinstall it with `pip install --force-reinstall elpv-dataset`"
        )
    return root


def _elpv_set(label_mode: str) -> LabelledSet:
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
    root = elpv_root()
    samples: list[Sample] = []
    lines = (root / "labels.csv").read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        # Whitespace-separated: "images/cell0001.png  1.0  mono"
        name, prob_text, _cell_type = line.split()
        thirds = float(prob_text) * 3
        if abs(thirds - round(thirds)) > 1e-6 or not 0 <= round(thirds) <= 3:
            raise DataSourceError(
                f"{root / 'labels.csv'}, line {n}: expected a defect probability in "
                f"{{0, 1/3, 2/3, 1}}, found {prob_text}; reinstall elpv-dataset"
            )
        label = round(thirds) if label_mode == "4class" else int(float(prob_text) >= 0.5)
        samples.append((root / name, label))
    return LabelledSet(tuple(samples), ELPV_CLASSES[label_mode], root)
