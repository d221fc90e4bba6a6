"""Inference optimisation and export: BN folding, ONNX / TorchScript / ExportedProgram, int8.

Each path is checked against the eager model when it is produced:

* :func:`optimize` -- an inference-only copy (BatchNorm folded, no dropout, channels_last,
  optionally ``torch.compile``), max logit difference <= 1e-4 at fp32;
* :func:`export_model` (:func:`export_onnx`, :func:`export_torchscript`,
  :func:`export_program`) -- files plus a ``.json`` sidecar holding the preprocessing, with the
  parity measured on reload;
* :func:`quantize_int8` -- static int8 for ONNX Runtime, calibrated on the user's data, with the
  held-out accuracy drop measured and bounded;
* :func:`export_source` -- ``effnet export``: a name or checkpoint in, the checked files out.

The file format (sidecar metadata, running an ONNX file) is :mod:`effnet.export.artifact`.
"""

from effnet.export.fold import (
    PARITY_ATOL,
    ParityError,
    check_parity,
    fold_batchnorm,
    max_abs_diff,
    optimize,
    parity_input,
    strip_training_layers,
)
from effnet.export.formats import (
    FORMATS,
    ExportResult,
    export_metadata,
    export_model,
    export_onnx,
    export_program,
    export_torchscript,
)
from effnet.export.graph import GraphSummary, inspect_graph
from effnet.export.pipeline import Int8Options, export_source, int8_loaders, model_from_source
from effnet.export.quantize import (
    RECIPES,
    Int8AccuracyError,
    Int8Recipe,
    Int8Report,
    evaluate_onnx,
    quantize_int8,
)

__all__ = [
    "FORMATS",
    "PARITY_ATOL",
    "RECIPES",
    "ExportResult",
    "GraphSummary",
    "Int8AccuracyError",
    "Int8Options",
    "Int8Recipe",
    "Int8Report",
    "ParityError",
    "check_parity",
    "evaluate_onnx",
    "export_metadata",
    "export_model",
    "export_onnx",
    "export_program",
    "export_source",
    "export_torchscript",
    "fold_batchnorm",
    "inspect_graph",
    "int8_loaders",
    "max_abs_diff",
    "model_from_source",
    "optimize",
    "parity_input",
    "quantize_int8",
    "strip_training_layers",
]
