"""effnet: the EfficientNet family (V1, Lite, V2) from one compound-scaling core."""

from effnet._version import __version__
from effnet.factory import create_model, load_model
from effnet.registry import get_spec, list_models

__all__ = ["__version__", "create_model", "get_spec", "list_models", "load_model"]
