"""Class names for the label sets that public checkpoints use."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["imagenet_labels", "labels_for"]


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the standard index order (from torchvision's metadata).

    torchvision is a dependency already, and its weight metadata carries the canonical list.
    """
    from torchvision.models import EfficientNet_B0_Weights

    names = tuple(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != 1000:
        raise RuntimeError(f"torchvision's ImageNet label list has {len(names)} entries, not 1000")
    return names


def labels_for(label_set: str, num_classes: int) -> list[str]:
    if label_set == "imagenet-1k" and num_classes == 1000:
        return list(imagenet_labels())
    return [f"class_{i}" for i in range(num_classes)]
