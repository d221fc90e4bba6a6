"""The plan of a fine-tuning run, from the data and this machine: image size, epochs, schedule,
learning rate, balancing, and (with ``--model auto``) the variant.

Everything here is decided from measurements, before training starts:

* :class:`DataProfile` -- what the data is: how many images, their native size, whether they are
  grayscale, how unbalanced the classes are.
* :func:`measure_speed` -- how fast this machine trains and evaluates a model at a few sizes,
  timed in a few seconds (a random-init model of the same name costs what the pretrained one does).
* :func:`make_plan` -- the largest image size (up to the images' native size and the weights'
  size) at which enough epochs fit the time budget, then as many epochs as fit; a progressive
  size schedule when it buys epochs; balanced loss weights and selection by balanced accuracy
  when the classes are unbalanced. Every decision carries its reason, printed and saved with the
  run (``plan.json``).

Without a time budget the plan is the one for a sensible default budget: about ten epochs at the
chosen size. Fields the user set explicitly are never changed: the plan only fills the ``auto``
ones (see :func:`effnet.train.config.FinetuneConfig`).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from effnet.errors import ConfigError

__all__ = [
    "DataProfile",
    "Plan",
    "Speed",
    "make_plan",
    "measure_speed",
    "parse_duration",
]

MIN_EPOCHS = 6
"""Fewer full epochs than this rarely fine-tune well: a smaller size is chosen first."""
MAX_EPOCHS = 40
DEFAULT_EPOCHS = 10
"""The plan without a time budget: this many epochs at the chosen size."""
RECAL_COST = 1.7
"""BatchNorm recalibration runs in train mode (batch statistics): about this many times the
fused model's inference time per image (measured, docs/finetune.md)."""
SAFETY = 0.92
"""The plan aims at this share of the budget: the rest absorbs noise and the report."""


def parse_duration(text: str | float | int) -> float:
    """``"10m"``, ``"90s"``, ``"1h30m"``, ``"1.5h"`` or a number of seconds -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        value = str(text).strip().lower()
        parts = re.fullmatch(
            r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", value
        )
        if not value or parts is None or not any(parts.groups()):
            raise ConfigError(
                f"a time budget looks like 10m, 90s, 1h30m or a number of seconds; got {text!r}"
            )
        h, m, s = (float(g) if g else 0.0 for g in parts.groups())
        seconds = h * 3600 + m * 60 + s
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"a time budget must be a positive duration, got {text!r}")
    return seconds


@dataclass(frozen=True)
class DataProfile:
    """What the data is, as far as planning a run goes."""

    num_train: int
    num_val: int
    num_test: int
    class_counts: tuple[int, ...]
    native_size: int
    """Median short side of the training pictures, in pixels."""
    grayscale: bool

    @property
    def imbalance(self) -> float:
        """Largest class count over the smallest (1.0: balanced)."""
        counts = [c for c in self.class_counts if c > 0]
        return max(counts) / min(counts) if counts else 1.0

    @classmethod
    def of(cls, data: Any) -> DataProfile:
        """From :func:`effnet.data.load_source`'s result (decoded pictures when it kept them)."""
        from PIL import Image

        counts = tuple(data.train.class_counts)
        sides: list[int] = []
        gray: list[bool] = []
        images = getattr(data, "images", None)
        paths = [p for p, _ in data.train.samples]
        step = max(1, len(paths) // 400)  # a sample of up to ~400 pictures is plenty
        for path in paths[::step]:
            if images is not None and path in images:
                picture = images._memo[str(path)]
            else:
                with Image.open(path) as opened:
                    picture = opened.copy()
            sides.append(min(picture.size))
            gray.append(picture.mode in ("L", "I;16", "I", "F", "1", "LA"))
        return cls(
            num_train=len(data.train),
            num_val=len(data.val) if data.val is not None else 0,
            num_test=len(data.test) if data.test is not None else 0,
            class_counts=counts,
            native_size=int(statistics.median(sides)) if sides else 224,
            grayscale=bool(gray) and all(gray),
        )


@dataclass(frozen=True)
class Speed:
    """Images per second of one model at one size on this machine."""

    size: int
    train: float
    """Training step (forward, backward, optimizer), images per second."""
    infer: float
    """The fused inference copy, images per second."""


def measure_speed(
    model: str,
    sizes: Sequence[int],
    *,
    batch: int = 32,
    channels_last: bool = True,
    steps: int = 2,
) -> dict[int, Speed]:
    """Time ``steps`` training steps and inference batches of ``model`` at each size (after one
    warm-up each). A random-init model of the same name costs what the pretrained one does."""
    import torch.nn.functional as F

    from effnet.export.fold import optimize
    from effnet.factory import create_model

    net = create_model(model, num_classes=10).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    fused = optimize(net, channels_last=channels_last, check=False)
    out: dict[int, Speed] = {}
    for size in sizes:
        x = torch.randn(batch, 3, size, size)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch,))

        def train_step(x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()

        def infer(x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                fused(x)

        out[size] = Speed(size, batch / _timed(train_step, steps), batch / _timed(infer, steps))
    return out


def _timed(fn: Callable[[], None], steps: int) -> float:
    fn()  # warm-up: kernels chosen, buffers allocated
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed: other processes only ever make a step slower


def interpolate(speeds: dict[int, Speed], size: int) -> Speed:
    """The speed at ``size`` from measured sizes: time per image is linear in the pixel count
    between (and beyond) the measured points."""
    known = sorted(speeds)
    if size in speeds:
        return speeds[size]
    lo, hi = (known[0], known[-1]) if len(known) > 1 else (known[0], known[0])
    if len(known) > 1:
        below = [s for s in known if s <= size]
        above = [s for s in known if s >= size]
        lo = below[-1] if below else known[0]
        hi = above[0] if above else known[-1]
        if lo == hi:
            lo, hi = (known[0], known[1]) if size < known[0] else (known[-2], known[-1])

    def per_image(attr: str, s: int) -> float:
        return 1.0 / getattr(speeds[s], attr)

    def at(attr: str) -> float:
        if lo == hi:  # one point: time per image proportional to pixels
            return getattr(speeds[lo], attr) * (lo / size) ** 2
        t_lo, t_hi = per_image(attr, lo), per_image(attr, hi)
        px = size * size
        slope = (t_hi - t_lo) / (hi * hi - lo * lo)
        return 1.0 / max(t_lo + slope * (px - lo * lo), 1e-6)

    return Speed(size, at("train"), at("infer"))


@dataclass
class Plan:
    """What a run will do and why; ``estimate`` is the expected seconds per pass."""

    model: str
    image_size: int
    epochs: int
    head_epochs: int
    progressive: str | None
    lr: float
    augment: str
    crop_pct: float
    balance: str
    select_by: str
    budget_seconds: float | None
    estimate: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def estimated_seconds(self) -> float:
        return sum(self.estimate.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "estimated_seconds": round(self.estimated_seconds, 1)}

    def describe(self) -> str:
        """The plan as a person reads it: the choices, then why."""
        budget = (
            f"time budget {_minutes(self.budget_seconds)}"
            if self.budget_seconds
            else "no time budget (the default plan)"
        )
        lines = [
            f"plan ({budget}): {self.model} at {self.image_size}px, {self.head_epochs} head + "
            f"{self.epochs} full epochs"
            + (f", progressive {self.progressive}" if self.progressive else "")
            + f", lr {self.lr:g}, augment {self.augment}, balance {self.balance}, best epoch "
            f"by {self.select_by.replace('_', ' ')}; expected {_minutes(self.estimated_seconds)} ("
            + ", ".join(f"{k} {v:.0f}s" for k, v in self.estimate.items() if v >= 0.5)
            + ")"
        ]
        lines += [f"  - {reason}" for reason in self.reasons]
        return "\n".join(lines)


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f}s"


def candidate_sizes(native: int, weights_size: int) -> list[int]:
    """Sizes worth training at, multiples of 32: from 64 px up to twice the images' native
    size (small pictures gain from some upsampling, the pretrained filters expect objects of
    some pixels) and never above the weights' own size."""
    top = min(weights_size, max(64, 32 * round(2 * native / 32)))
    return list(range(64, top - top % 32 + 1, 32)) or [64]


def progressive_text(size: int, epochs: int) -> str | None:
    """EfficientNetV2's progressive learning when it pays: from ~0.6x to the full size over up
    to four stages (a quarter of the epochs each), for runs long and large enough."""
    if epochs < 8 or size < 160:
        return None
    start = max(64, 32 * round(0.6 * size / 32))
    stages = min(4, epochs // 3)
    return f"stages={stages},size={start}:{size}"


def _progressive_cost_factor(
    text: str | None, size: int, speed_at: Callable[[int], Speed]
) -> float:
    """Mean training time per image over a progressive schedule, relative to the full size."""
    if not text:
        return 1.0
    parts = dict(p.split("=") for p in text.split(","))
    stages = int(parts["stages"])
    lo, hi = (int(v) for v in parts["size"].split(":"))
    sizes = [round(lo + (hi - lo) * i / max(1, stages - 1)) for i in range(stages)]
    full = 1.0 / speed_at(size).train
    return statistics.mean(1.0 / speed_at(s).train for s in sizes) / full


def make_plan(
    model: str,
    profile: DataProfile,
    speeds: dict[int, Speed],
    weights_size: int,
    *,
    budget_seconds: float | None = None,
    spent_seconds: float = 0.0,
    head_epochs: int = 2,
    tta: bool = False,
) -> Plan:
    """The plan for ``model`` on data ``profile`` with this machine's ``speeds``."""
    reasons: list[str] = []
    sizes = candidate_sizes(profile.native_size, weights_size)
    reasons.append(
        f"images are {profile.native_size}px (median short side), the weights were trained at "
        f"{weights_size}px: sizes {sizes[0]}-{sizes[-1]}px are worth training at"
    )

    def speed_at(size: int) -> Speed:
        return interpolate(speeds, size)

    def fixed(size: int) -> dict[str, float]:
        s = speed_at(size)
        return {
            "recalibrate": RECAL_COST * profile.num_train / s.infer,
            "features": profile.num_train / s.infer,
            "test": (2 if tta else 1) * profile.num_test / s.infer,
        }

    def epoch_seconds(size: int, progressive: str | None) -> float:
        s = speed_at(size)
        factor = _progressive_cost_factor(progressive, size, speed_at)
        return factor * profile.num_train / s.train + profile.num_val / s.infer

    if budget_seconds is None:
        size = sizes[-1]
        epochs = DEFAULT_EPOCHS
        reasons.append(f"no time budget: {epochs} epochs at {size}px (--time-budget to fit one)")
    else:
        available = budget_seconds * SAFETY - spent_seconds

        def fitting_epochs(candidate: int) -> int:
            left = available - sum(fixed(candidate).values())
            if left <= 0:
                return 0
            n = int(left // epoch_seconds(candidate, progressive_text(candidate, MAX_EPOCHS)))
            if progressive_text(candidate, min(n, MAX_EPOCHS)) is None:  # too short for it
                n = int(left // epoch_seconds(candidate, None))
            return min(MAX_EPOCHS, n)

        size, epochs = sizes[0], 0
        for candidate in reversed(sizes):
            n = fitting_epochs(candidate)
            if n >= MIN_EPOCHS or candidate == sizes[0]:
                size, epochs = candidate, n
                break
        if epochs < 1:
            epochs = 1
            reasons.append(
                f"the budget ({_minutes(budget_seconds)}) is too short for even one epoch at "
                f"{size}px on this machine: planning 1 epoch; expect to run over"
            )
        else:
            reasons.append(
                f"at {size}px this machine trains {speed_at(size).train:.0f} img/s: {epochs} "
                f"epochs fit the budget"
                + (f" (capped at {MAX_EPOCHS})" if epochs == MAX_EPOCHS else "")
            )
    progressive = progressive_text(size, epochs)
    if progressive:
        reasons.append(
            f"progressive learning ({progressive}): early epochs at lower resolution cost less "
            f"and reach the same accuracy (EfficientNetV2; docs/training.md)"
        )
    lr = 1e-3 if profile.num_train <= 50_000 else 5e-4
    reasons.append(
        f"lr {lr:g} (AdamW, warmup then cosine): fine-tuning every layer of ImageNet weights on "
        f"{profile.num_train} images"
    )
    balance, select_by = "none", "accuracy"
    if profile.imbalance >= 2.0:
        balance, select_by = "loss", "balanced_accuracy"
        reasons.append(
            f"classes are unbalanced ({profile.imbalance:.1f}:1): class-weighted loss, and the "
            f"best epoch is chosen by balanced accuracy"
        )
    reasons.append(
        "augment 'flip' on the whole image (crop_pct 1.0): random crops can cut away what "
        "decides the class at a picture's border"
    )
    if profile.grayscale:
        reasons.append("grayscale pictures: fed to the RGB stem as three equal channels")
    estimate = {k: round(v, 1) for k, v in fixed(size).items()}
    estimate["train"] = round(epochs * epoch_seconds(size, progressive), 1)
    return Plan(
        model=model,
        image_size=size,
        epochs=epochs,
        head_epochs=head_epochs,
        progressive=progressive,
        lr=lr,
        augment="flip",
        crop_pct=1.0,
        balance=balance,
        select_by=select_by,
        budget_seconds=budget_seconds,
        estimate=estimate,
        reasons=reasons,
    )
