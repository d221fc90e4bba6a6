"""EfficientNetV2's progressive learning (Tan & Le 2021, section 4.2 and Algorithm 1).

Training is split into M stages. Stage k (0-based) trains at image size S_k and regularisation
Phi_k, both interpolated linearly from the first stage's values to the last's::

    S_k   = S_0   + (S_e   - S_0)   * k / (M - 1)
    Phi_k = Phi_0 + (Phi_e - Phi_0) * k / (M - 1)

where Phi covers dropout, RandAugment magnitude and mixup/cutmix alpha. Epochs are shared out
evenly between stages (earlier stages take the remainder). Sizes between the two ends are rounded
to a multiple of 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from effnet.errors import ConfigError

__all__ = ["ProgressiveSchedule", "StageValues"]

_KEYS = ("size", "randaug", "mixup", "cutmix", "dropout")


@dataclass(frozen=True)
class StageValues:
    """What one stage trains with."""

    stage: int
    epochs: tuple[int, int]
    """First and last epoch (0-based, inclusive) of the stage."""
    size: int
    magnitude: int | None
    mixup: float | None
    cutmix: float | None
    dropout: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage + 1,
            "epochs": f"{self.epochs[0] + 1}-{self.epochs[1] + 1}",
            "size": self.size,
            "randaug": self.magnitude,
            "mixup": self.mixup,
            "cutmix": self.cutmix,
            "dropout": self.dropout,
        }


@dataclass(frozen=True)
class ProgressiveSchedule:
    stages: int
    size: tuple[int, int]
    randaug: tuple[float, float] | None = None
    mixup: tuple[float, float] | None = None
    cutmix: tuple[float, float] | None = None
    dropout: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.stages < 1:
            raise ConfigError(f"progressive learning needs >= 1 stage, got {self.stages}")
        if min(self.size) < 32:
            raise ConfigError(f"progressive image sizes must be >= 32 px, got {self.size}")
        if self.dropout and not all(0.0 <= d < 1.0 for d in self.dropout):
            raise ConfigError(f"dropout must stay in [0, 1), got {self.dropout}")
        if self.randaug and not all(0 <= m <= 30 for m in self.randaug):
            raise ConfigError(f"RandAugment magnitude must stay in [0, 30], got {self.randaug}")

    @classmethod
    def parse(cls, text: str) -> ProgressiveSchedule:
        """``"stages=4,size=128:300,randaug=5:15,mixup=0:0.2,dropout=0.1:0.3"``."""
        fields: dict[str, Any] = {}
        try:
            for item in filter(None, (p.strip() for p in text.split(","))):
                key, _, value = item.partition("=")
                key = key.strip()
                if key == "stages":
                    fields["stages"] = int(value)
                elif key in _KEYS:
                    lo, _, hi = value.partition(":")
                    pair = (float(lo), float(hi or lo))
                    fields[key] = (int(pair[0]), int(pair[1])) if key == "size" else pair
                else:
                    raise KeyError(key)
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"cannot read progressive schedule {text!r} ({exc}); expected e.g. "
                f"'stages=4,size=128:300,randaug=5:15,mixup=0:0.2,dropout=0.1:0.3' "
                f"(keys: stages, {', '.join(_KEYS)})"
            ) from None
        if "stages" not in fields or "size" not in fields:
            raise ConfigError(f"progressive schedule {text!r} needs at least stages= and size=")
        return cls(**fields)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgressiveSchedule:
        """From a recipe's YAML block: ``{stages: 4, size: [128, 300], randaug: [5, 15], ...}``."""
        unknown = set(data) - {"stages", *_KEYS}
        if unknown:
            raise ConfigError(f"unknown progressive keys {sorted(unknown)}; known: stages, {_KEYS}")
        values = {
            k: tuple(v) if isinstance(v, (list, tuple)) else (v, v)
            for k, v in data.items()
            if k != "stages"
        }
        if "size" in values:
            values["size"] = tuple(int(s) for s in values["size"])
        return cls(stages=int(data["stages"]), **values)

    def to_text(self) -> str:
        parts = [f"stages={self.stages}"]
        for key in _KEYS:
            pair = getattr(self, key)
            if pair is not None:
                parts.append(f"{key}={pair[0]:g}:{pair[1]:g}")
        return ",".join(parts)

    @staticmethod
    def _interp(pair: tuple[float, float] | None, k: int, stages: int) -> float | None:
        if pair is None:
            return None
        t = k / (stages - 1) if stages > 1 else 1.0
        return pair[0] + (pair[1] - pair[0]) * t

    def stage_epochs(self, total_epochs: int) -> list[tuple[int, int]]:
        """(first, last) epoch of each stage; earlier stages get the remainder."""
        stages = min(self.stages, max(1, total_epochs))
        base, extra = divmod(total_epochs, stages)
        spans, start = [], 0
        for k in range(stages):
            n = base + (1 if k < extra else 0)
            spans.append((start, start + n - 1))
            start += n
        return spans

    def stage(self, k: int, total_epochs: int) -> StageValues:
        spans = self.stage_epochs(total_epochs)
        m = len(spans)  # fewer epochs than stages: one stage per epoch, same end points
        size = self._interp((float(self.size[0]), float(self.size[1])), k, m)
        assert size is not None
        mag = self._interp(self.randaug, k, m)
        mix = self._interp(self.mixup, k, m)
        cut = self._interp(self.cutmix, k, m)
        drop = self._interp(self.dropout, k, m)
        return StageValues(
            stage=k,
            epochs=spans[k],
            size=self._round_size(size, k, m),
            magnitude=None if mag is None else round(mag),
            mixup=None if mix is None else round(mix, 4),
            cutmix=None if cut is None else round(cut, 4),
            dropout=None if drop is None else round(drop, 4),
        )

    def _round_size(self, size: float, k: int, stages: int) -> int:
        """The given end points exactly; sizes in between on a multiple of 8."""
        if k == 0:
            return self.size[0]
        if k == stages - 1:
            return self.size[1]
        return max(32, round(size / 8) * 8)

    def at_epoch(self, epoch: int, total_epochs: int) -> StageValues:
        for k, (first, last) in enumerate(self.stage_epochs(total_epochs)):
            if first <= epoch <= last:
                return self.stage(k, total_epochs)
        raise ConfigError(f"epoch {epoch} is outside a {total_epochs}-epoch schedule")

    def table(self, total_epochs: int) -> list[StageValues]:
        return [self.stage(k, total_epochs) for k in range(len(self.stage_epochs(total_epochs)))]

    def describe(self, total_epochs: int) -> str:
        """One line: each stage's epochs, size and the regularisation it sets."""
        return "; ".join(
            f"stage {v.stage + 1} epochs {v.epochs[0] + 1}-{v.epochs[1] + 1}: {v.size}px"
            + (f", randaug {v.magnitude}" if v.magnitude is not None else "")
            + (f", mixup {v.mixup:g}" if v.mixup is not None else "")
            + (f", cutmix {v.cutmix:g}" if v.cutmix is not None else "")
            + (f", dropout {v.dropout:g}" if v.dropout is not None else "")
            for v in self.table(total_epochs)
        )
