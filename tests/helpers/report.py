"""The report tests' tiny models, blob pictures and runs: a ~10k-parameter model that learns
to find a bright blob, and a real fine-tuning run directory in a few seconds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from effnet.model import EfficientNet
from effnet.specs import ModelSpec, PreprocessConfig, StageSpec

SIZE = 64  # the model's input
ORIGINAL = 80  # the files: the eval transform resizes to 80 and center-crops 64 (offset 8)
OFFSET = (ORIGINAL - SIZE) // 2
RADIUS = 10  # the object: a bright disc-like blob, 2 sigma = 10 px
MARGIN = 6  # blobs keep off the crop's border, where upsampled maps are flat


def tiny_model(num_classes: int = 2) -> EfficientNet:
    """~10k parameters, total stride 8 (an 8x8 map at 64 px).

    The 3x3 convolutions run before the stride-4 and stride-8 stages only (1x1 depthwise
    kernels after), so a cell of the last feature map sees a small patch and a map can say
    *where* something is to within a few pixels, which is what the test measures.
    """
    stages = (
        StageSpec("mbconv", 1, 3, 1, 1, 16, 0.0),
        StageSpec("mbconv", 1, 1, 2, 4, 24, 0.0),
        StageSpec("mbconv", 1, 1, 2, 4, 32, 0.0),
    )
    spec = ModelSpec(
        "tiny_cam", 16, stages, 64, SIZE, dropout=0.0, drop_path_rate=0.0, bn_momentum=0.1
    )
    model = EfficientNet(spec, num_classes=num_classes)
    model.preprocess = PreprocessConfig(
        input_size=SIZE, crop_pct=SIZE / ORIGINAL, interpolation="bilinear", resize=ORIGINAL
    )
    return model


@dataclass(frozen=True)
class Blob:
    """Where the object is in the model's input (after resize and center crop)."""

    x: float
    y: float
    radius: float = RADIUS

    def contains(self, x: float, y: float) -> bool:
        return (x - self.x) ** 2 + (y - self.y) ** 2 <= self.radius**2


def blob_picture(rng: np.random.Generator, present: bool) -> tuple[Image.Image, Blob | None]:
    """An ORIGINAL x ORIGINAL noisy picture, with (``present``) a bright Gaussian blob at a
    random place inside the part the center crop keeps."""
    pixels = rng.integers(60, 130, size=(ORIGINAL, ORIGINAL, 3)).astype(np.float64)
    if not present:
        return Image.fromarray(pixels.astype(np.uint8)), None
    lo, hi = OFFSET + RADIUS + MARGIN, OFFSET + SIZE - RADIUS - MARGIN
    cx, cy = (float(v) for v in rng.uniform(lo, hi, size=2))
    yy, xx = np.mgrid[0:ORIGINAL, 0:ORIGINAL]
    blob = 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (RADIUS / 2) ** 2))
    pixels = np.clip(pixels + blob[..., None], 0, 255)
    # pixel centres: the crop keeps original pixels OFFSET .. OFFSET + SIZE - 1 unscaled
    return Image.fromarray(pixels.astype(np.uint8)), Blob(cx - OFFSET, cy - OFFSET)


def train_blob_detector(steps: int = 60, seed: int = 0) -> EfficientNet:
    """Class 1 = a bright blob somewhere, class 0 = noise only; trained on the model's own eval
    view of the pictures. A few seconds on one CPU core."""
    from effnet.data import eval_transform

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = tiny_model()
    # A zero classifier: softmax gradients sum to zero over the classes, so the two classes'
    # weights stay opposite and the class-1 map is only the evidence that tells them apart,
    # without a random common part spread over the background.
    torch.nn.init.zeros_(model.classifier.weight)
    transform = eval_transform(model)
    labels = [i % 2 for i in range(256)]
    x = torch.stack([transform(blob_picture(rng, bool(y))[0]) for y in labels])
    y = torch.tensor(labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (32,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model


def make_folder(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """``root/{blob,empty}/*.png`` and one corrupt file (so data.json lists a skipped file)."""
    rng = np.random.default_rng(seed)
    for name in ("blob", "empty"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            blob_picture(rng, name == "blob")[0].save(root / name / f"{name}_{i:02d}.png")
    (root / "blob" / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return root


def make_run(root: Path, **overrides: Any) -> Path:
    """A real fine-tuning run directory in a few seconds: random-init Lite0 at 64 px."""
    import warnings

    import effnet

    data = make_folder(root / "data")
    config: dict[str, Any] = dict(
        data=str(data),
        out=str(root / "run"),
        model="tf_efficientnet_lite0",
        weights="none",
        image_size=64,
        batch_size=8,
        eval_batch_size=16,
        head_epochs=1,
        epochs=1,
        workers=0,
        split="50/25/25",
        progress=False,
        drop_rate=0.0,
    )
    config.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "skipping 1 unreadable image": on purpose
        return effnet.finetune(effnet.FinetuneConfig(**config)).run_dir
