"""effnet: the EfficientNet family (V1, Lite, V2) from one compound-scaling core."""

from __future__ import annotations

from typing import Any

from effnet._version import __version__
from effnet.factory import create_model, load_model
from effnet.registry import get_spec, list_models

__all__ = [
    "FinetuneConfig",
    "TrainConfig",
    "__version__",
    "create_model",
    "finetune",
    "get_spec",
    "list_models",
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
