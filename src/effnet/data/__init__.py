"""Data for fine-tuning, prediction and evaluation.

* :func:`load_image` / :func:`list_images`: any picture -> upright RGB; bad files raise
  :class:`UnreadableImageError`; :class:`DecodedImages` keeps what the up-front check decoded.
* :func:`eval_transform`: the preprocessing a model or weights record needs, exactly.
* :func:`load_source`: a class folder, split folders, a CSV or ``"elpv"`` -> validated,
  stratified, recorded :class:`SourceSplits`; :class:`ImageDataset` loads them.
* :func:`write_data_record` / :func:`recorded_splits`: a run's ``data.json``, written once and
  read back file for file (evaluation, int8 calibration, benchmarks).
* :func:`train_transform` presets and :class:`MixupCutmix` for training.
* :func:`class_weights` / :func:`balanced_sampler` for skewed classes.
"""

from effnet.data.augment import PRESETS, is_deterministic, train_transform
from effnet.data.balance import balanced_sampler, class_counts, class_weights
from effnet.data.datasets import (
    DataSourceError,
    ImageDataset,
    LabelledSet,
    Sample,
    ValidationReport,
    validate_set,
)
from effnet.data.images import (
    IMAGE_EXTENSIONS,
    DecodedImages,
    SkippedFile,
    UnreadableImageError,
    check_image,
    decode_images,
    list_images,
    load_image,
)
from effnet.data.mixing import MixupCutmix, one_hot
from effnet.data.record import (
    read_data_record,
    recorded_splits,
    same_source,
    write_data_record,
)
from effnet.data.sources import ELPV_CLASSES, LABEL_MODES, SourceSplits, elpv_root, load_source
from effnet.data.splits import SplitFractions, apply_split_record, split_record, stratified_split
from effnet.data.transforms import eval_transform, resolve_preprocess

__all__ = [
    "ELPV_CLASSES",
    "IMAGE_EXTENSIONS",
    "LABEL_MODES",
    "PRESETS",
    "DataSourceError",
    "DecodedImages",
    "ImageDataset",
    "LabelledSet",
    "MixupCutmix",
    "Sample",
    "SkippedFile",
    "SourceSplits",
    "SplitFractions",
    "UnreadableImageError",
    "ValidationReport",
    "apply_split_record",
    "balanced_sampler",
    "check_image",
    "class_counts",
    "class_weights",
    "decode_images",
    "elpv_root",
    "eval_transform",
    "is_deterministic",
    "list_images",
    "load_image",
    "load_source",
    "one_hot",
    "read_data_record",
    "recorded_splits",
    "resolve_preprocess",
    "same_source",
    "split_record",
    "stratified_split",
    "train_transform",
    "validate_set",
    "write_data_record",
]
