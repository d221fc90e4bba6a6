"""Pretrained weights: the catalog of records, download and cache, file IO and converters.

Most users never import this package directly: ``effnet.create_model(name, pretrained=True)`` and
``effnet.load_model(path)`` use it.
"""

from effnet.weights.convert import ConversionError, detect_format, from_effnet, to_effnet
from effnet.weights.hub import DownloadError, OfflineError, cache_dir, download, fetch
from effnet.weights.io import WeightsFileError, read_metadata, read_state_dict, write_safetensors
from effnet.weights.labels import imagenet_labels
from effnet.weights.loading import LoadedWeights, adapt_stem, build, read_weights, resolve_weights
from effnet.weights.native import convert_file, load_checkpoint, save_model, stored_temperature
from effnet.weights.records import (
    RECORDS,
    WeightRecord,
    default_record,
    find_record,
    list_records,
)

__all__ = [
    "RECORDS",
    "ConversionError",
    "DownloadError",
    "LoadedWeights",
    "OfflineError",
    "WeightRecord",
    "WeightsFileError",
    "adapt_stem",
    "build",
    "cache_dir",
    "convert_file",
    "default_record",
    "detect_format",
    "download",
    "fetch",
    "find_record",
    "from_effnet",
    "imagenet_labels",
    "list_records",
    "load_checkpoint",
    "read_metadata",
    "read_state_dict",
    "read_weights",
    "resolve_weights",
    "save_model",
    "stored_temperature",
    "to_effnet",
    "write_safetensors",
]
