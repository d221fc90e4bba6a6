"""Classify pictures with a model's own preprocessing: the eager model (:func:`predict_files`)
or an exported ONNX file through ONNX Runtime (:class:`OnnxPredictor`), one batch loop for both.
"""

from effnet.predict.files import (
    DEFAULT_MODEL,
    Prediction,
    PredictionRun,
    expand_inputs,
    open_model,
    predict_files,
)
from effnet.predict.onnx import OnnxPredictor

__all__ = [
    "DEFAULT_MODEL",
    "OnnxPredictor",
    "Prediction",
    "PredictionRun",
    "expand_inputs",
    "open_model",
    "predict_files",
]
