"""``torch.hub.load`` entry points: ``torch.hub.load("path/or/owner/effnet", "efficientnet_b0")``.

Every effnet model name is an entry point taking ``create_model``'s keywords
(``pretrained=True``, ``num_classes=10``, ...). ``torch.hub.list`` shows them all.
"""

from __future__ import annotations

import sys
from pathlib import Path

dependencies = ["torch", "torchvision", "safetensors", "numpy", "PIL", "yaml", "tqdm"]

_SRC = Path(__file__).resolve().parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:  # a checkout that is not pip-installed
    sys.path.insert(0, str(_SRC))

import effnet as _effnet  # noqa: E402


def _entry_point(name: str):  # type: ignore[no-untyped-def]
    def build(pretrained: bool = False, **kwargs):  # type: ignore[no-untyped-def]
        return _effnet.create_model(name, pretrained=pretrained, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"effnet.create_model({name!r}, pretrained=..., **kwargs)"
    return build


for _name in _effnet.list_models():
    globals()[_name] = _entry_point(_name)
