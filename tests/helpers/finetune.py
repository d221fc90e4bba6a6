"""A tiny fine-tuning config: 32 px, a few images, one head and two full epochs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effnet.train import FinetuneConfig


def tiny_config(data: Path, out: Path, **overrides: Any) -> FinetuneConfig:
    base: dict[str, Any] = dict(
        data=str(data),
        out=str(out),
        model="tf_efficientnet_lite0",
        image_size=32,
        batch_size=8,
        eval_batch_size=16,
        head_epochs=1,
        epochs=2,
        workers=0,
        split="60/20/20",
        progress=False,
        drop_rate=0.0,
    )
    base.update(overrides)
    return FinetuneConfig(**base)
