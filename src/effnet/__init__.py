"""effnet: the EfficientNet family (V1, Lite, V2) from one compound-scaling core."""

from effnet.factory import create_model
from effnet.registry import get_spec, list_models

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "get_spec", "list_models"]
