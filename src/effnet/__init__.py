"""effnet: the EfficientNet family (V1, Lite, V2) from one compound-scaling core."""

from __future__ import annotations

from typing import Any

from effnet._version import __version__
from effnet.factory import create_model, load_model
from effnet.registry import get_spec, is_model, list_models, list_pretrained
from effnet.tvstyle import get_model, get_model_weights, get_weight

__all__ = [
    "FinetuneConfig",
    "TrainConfig",
    "__version__",
    "create_model",
    "finetune",
    "get_model",
    "get_model_weights",
    "get_spec",
    "get_weight",
    "is_model",
    "list_models",
    "list_pretrained",
    "load_model",
    "resume",
]

# The fine-tuning workflow pulls in data/augmentation/plotting code: import it on first use only,
# so `import effnet` for a model stays light.
_LAZY = {"finetune", "resume", "FinetuneConfig", "TrainConfig"}  # from scratch: effnet.train.train


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import effnet.train as _train

        return getattr(_train, name)
    raise AttributeError(f"module 'effnet' has no attribute {name!r}")
