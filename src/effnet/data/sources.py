"""One entry point for training data: ``load_source(src)`` -> validated, split, recorded.

``src`` is one of

* a folder ``root/<class>/*.jpg`` (ImageFolder layout), split here;
* a folder with ``train/``, ``val/`` (or ``valid/``, ``validation/``) and/or ``test/``, each in
  ImageFolder layout, used as given (a missing ``val/`` is carved from ``train/``);
* a CSV file of ``path,label[,split]`` rows (header optional; paths relative to the CSV's
  folder), split here unless it has a split column;
* ``"elpv"``: the ELPV solar-cell set shipped by the ``elpv-dataset`` package, read in place.

Everything that would make a run fail late or silently (empty class, one class, a class too
small for the split, a missing file, a val/test label unseen in train) raises
:class:`~effnet.data.datasets.DataSourceError` here, before any training.
"""

from __future__ import annotations

import csv
import importlib.util
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
)
from effnet.data.images import list_images
from effnet.data.splits import SPLIT_NAMES, SplitFractions, split_record, stratified_split

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

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_skipped(self) -> int:
        """Files dropped by validation: report this with the run."""
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
    deep: bool = False,
) -> SourceSplits:
    """Load, validate, check and split ``src`` (see the module docstring for the forms).

    ``label_mode`` (``"4class"`` default, or ``"binary"``) applies to ``"elpv"`` only.
    ``fractions`` (default 70/15/15) and ``seed`` drive the stratified split of a single set.
    ``validate`` runs the cheap per-file check (``deep`` decodes every file); bad files are
    dropped and counted in ``result.validation``.
    """
    fractions = fractions or SplitFractions()
    text = str(src)
    if text.lower() == "elpv":
        mode = label_mode or "4class"
        given: dict[str, LabelledSet] = {"all": _elpv_set(mode)}
        kind = "elpv"
    else:
        if label_mode is not None:
            raise ValueError(
                f"label_mode applies to the 'elpv' source only, got label_mode={label_mode!r} "
                f"for {text}; drop it (folder and CSV labels are used as they are)"
            )
        mode = None
        path = Path(src).expanduser()
        if path.is_dir():
            given, kind = _folder_sets(path)
        elif path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt"):
            given, kind = _csv_sets(path), "csv"
        else:
            found = "a file of another type" if path.exists() else "nothing"
            raise DataSourceError(
                f"expected a data source: a folder root/<class>/<images>, a CSV of path,label "
                f"rows, or 'elpv'; found {found} at {path}"
            )
        if kind == "csv" and set(given) != {"all"}:
            kind = "csv-splits"

    report = ValidationReport()
    if validate:
        for name, part in given.items():
            given[name], rep = validate_set(part, deep=deep)
            report = report.merge(rep)
    for name, part in given.items():
        _check_set(part, name if name != "all" else "the data", text)

    if "all" in given:
        splits = stratified_split(given["all"], fractions, seed=seed)
        parts: dict[str, LabelledSet | None] = {
            k: (v if len(v) else None) for k, v in splits.items()
        }
        record = split_record(parts, mode="stratified", seed=seed, fractions=fractions, source=text)
    else:
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
            source=text,
        )
    train = parts["train"]
    assert train is not None  # stratified_split always fills train (fraction > 0)
    return SourceSplits(
        text, kind, train.classes, train, parts["val"], parts["test"], report, record, mode
    )


def _check_set(part: LabelledSet, where: str, source: str) -> None:
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
    raise DataSourceError(
        f"{source}: class(es) {empty} have no readable images in {where}; add images or "
        "remove the class"
    )


# -- folders ------------------------------------------------------------------------------------


def _subdirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _folder_sets(root: Path) -> tuple[dict[str, LabelledSet], str]:
    dirs = _subdirs(root)
    split_dirs = [d for d in dirs if d.name.lower() in _SPLIT_ALIASES]
    if not any(d.name.lower() == "train" for d in split_dirs):
        return {"all": _image_folder(root)}, "folder"
    if len(split_dirs) != len(dirs):
        others = [d.name for d in dirs if d not in split_dirs]
        raise DataSourceError(
            f"{root}: found a train/ folder next to other folders {others}; expected either "
            "only train/, val/, test/ (each root/<class>/...) or only class folders"
        )
    sets: dict[str, LabelledSet] = {}
    for d in split_dirs:
        name = _SPLIT_ALIASES[d.name.lower()]
        if name in sets:
            raise DataSourceError(f"{root}: more than one folder for split {name!r}; keep one")
        # Paths stay relative to the top folder so the record tells train/x.png from test/x.png.
        sets[name] = _image_folder(d, report_root=root)
    classes = sets["train"].classes
    for name, part in sets.items():
        if part.classes != classes:
            unseen = sorted(set(part.classes) - set(classes))
            absent = sorted(set(classes) - set(part.classes))
            raise DataSourceError(
                f"{root}: the class folders of {name}/ differ from train/: unseen in train "
                f"{unseen}, missing from {name}/ {absent}; every split needs the same classes"
            )
    if set(sets) == {"train"}:
        return {"all": sets["train"]}, "folder"
    return sets, "split-folders"


def _image_folder(root: Path, report_root: Path | None = None) -> LabelledSet:
    class_dirs = _subdirs(root)
    if not class_dirs:
        loose = len(list_images(root, recursive=False))
        raise DataSourceError(
            f"{root}: expected one sub-folder per class (root/<class>/<images>), found no "
            f"sub-folders ({loose} image(s) directly in it); move images into class folders"
        )
    samples: list[Sample] = []
    for label, d in enumerate(class_dirs):
        files = list_images(d)
        if not files:
            raise DataSourceError(
                f"class folder {d} has no image files (expected .jpg/.png/...); add images or "
                "remove the folder"
            )
        samples.extend((f, label) for f in files)
    return LabelledSet(tuple(samples), tuple(d.name for d in class_dirs), report_root or root)


# -- CSV ----------------------------------------------------------------------------------------


def _natural_key(text: str) -> tuple[Any, ...]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)], text)


def _csv_rows(path: Path) -> list[tuple[int, str, str, str | None]]:
    """(line number, path, label, split) per row; header optional."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        rows = [(n, [c.strip() for c in r]) for n, r in enumerate(csv.reader(fh, dialect), 1)]
    rows = [(n, r) for n, r in rows if any(r)]
    if not rows:
        raise DataSourceError(f"{path}: the CSV is empty; expected rows of path,label")
    cols = [c.lower() for c in rows[0][1]]
    ip, il, isplit = 0, 1, 2
    if cols[0] in _PATH_COLUMNS or (len(cols) > 1 and cols[1] in _LABEL_COLUMNS):
        try:
            ip = next(i for i, c in enumerate(cols) if c in _PATH_COLUMNS)
            il = next(i for i, c in enumerate(cols) if c in _LABEL_COLUMNS)
        except StopIteration:
            raise DataSourceError(
                f"{path}: header {rows[0][1]} needs a path column (one of {_PATH_COLUMNS}) and "
                f"a label column (one of {_LABEL_COLUMNS})"
            ) from None
        isplit = cols.index("split") if "split" in cols else -1
        rows = rows[1:]
    out = []
    for n, r in rows:
        if len(r) <= max(ip, il) or not r[ip] or not r[il]:
            raise DataSourceError(
                f"{path}, line {n}: expected path,label[,split], found {r}; fix or delete the row"
            )
        split = r[isplit] if 0 <= isplit < len(r) and r[isplit] else None
        out.append((n, r[ip], r[il], split))
    return out


def _csv_sets(path: Path) -> dict[str, LabelledSet]:
    rows = _csv_rows(path)
    root = path.parent
    missing = [(n, p) for n, p, _, _ in rows if not (root / p).is_file()]
    if missing:
        shown = ", ".join(f"line {n}: {p}" for n, p in missing[:5])
        raise DataSourceError(
            f"{path}: {len(missing)} row(s) point to missing files ({shown}); paths are "
            f"relative to {root}; fix the paths or remove the rows"
        )
    splits = {s for *_, s in rows}
    if splits == {None}:
        groups: dict[str, list[tuple[Path, str]]] = {"all": [(root / p, y) for _, p, y, _ in rows]}
    else:
        bad = sorted({str(s) for s in splits if s is None or s.lower() not in _SPLIT_ALIASES})
        if bad:
            raise DataSourceError(
                f"{path}: split column values must be train/val/test on every row, found {bad}"
            )
        groups = {}
        for _, p, y, s in rows:
            groups.setdefault(_SPLIT_ALIASES[str(s).lower()], []).append((root / p, y))
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
    return {
        name: LabelledSet(tuple((p, index[y]) for p, y in items), classes, root)
        for name, items in groups.items()
    }


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
