"""Compound-scaling math (Tan & Le 2019, section 3.3). Pure functions, no torch.

    depth d = alpha ** phi,  width w = beta ** phi,  resolution r = gamma ** phi,
    with alpha * beta**2 * gamma**2 ~= 2 so that each step of phi roughly doubles the FLOPs.

Rounding follows the TensorFlow reference (``round_filters`` / ``round_repeats``), which is also
what torchvision and timm do, so that every named variant has exactly the published parameter count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from effnet.errors import ConfigError

__all__ = [
    "PAPER",
    "Coefficients",
    "Multipliers",
    "drop_path_rates",
    "multipliers",
    "parse_phis",
    "round_channels",
    "round_repeats",
    "round_resolution",
]


@dataclass(frozen=True)
class Coefficients:
    """Per-step growth of depth (alpha), width (beta) and resolution (gamma)."""

    alpha: float = 1.2
    beta: float = 1.1
    gamma: float = 1.15

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not value >= 1.0:
                raise ConfigError(
                    f"{name} must be >= 1.0 (a growth factor per step of phi), got {value!r}"
                )

    @property
    def flops_factor(self) -> float:
        """alpha * beta^2 * gamma^2: how much compute grows per unit of phi."""
        return self.alpha * self.beta**2 * self.gamma**2

    def meets_budget(self, budget: float = 2.0, tolerance: float = 0.05) -> bool:
        """True when alpha * beta^2 * gamma^2 is within ``tolerance`` (relative) of ``budget``.

        The paper's (1.2, 1.1, 1.15) gives 1.92, 4% under 2, so the default tolerance is 5%.
        """
        if budget <= 1.0:
            raise ConfigError(f"budget must be > 1 (compute growth per phi step), got {budget!r}")
        if tolerance < 0:
            raise ConfigError(f"tolerance must be >= 0, got {tolerance!r}")
        return abs(self.flops_factor - budget) <= tolerance * budget

    def check_budget(self, budget: float = 2.0, tolerance: float = 0.05) -> None:
        """Raise ValueError naming the product when the constraint does not hold."""
        if not self.meets_budget(budget, tolerance):
            raise ConfigError(
                f"alpha * beta^2 * gamma^2 = {self.flops_factor:.4f} for "
                f"(alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}); expected "
                f"{budget} +/- {tolerance:.0%}. Pick coefficients closer to the budget or widen "
                f"the tolerance."
            )


PAPER = Coefficients()
"""The paper's grid-search result at phi = 1: alpha=1.2, beta=1.1, gamma=1.15."""


@dataclass(frozen=True)
class Multipliers:
    """Depth, width and resolution multipliers relative to the base network."""

    depth: float
    width: float
    resolution: float


def multipliers(phi: float, coeffs: Coefficients = PAPER) -> Multipliers:
    """phi -> (alpha^phi, beta^phi, gamma^phi). ``phi`` may be any real number >= 0."""
    if not (isinstance(phi, (int, float)) and math.isfinite(phi)) or phi < 0:
        raise ConfigError(f"phi must be a finite number >= 0, got {phi!r}")
    return Multipliers(
        depth=coeffs.alpha**phi, width=coeffs.beta**phi, resolution=coeffs.gamma**phi
    )


def round_channels(
    channels: int, multiplier: float = 1.0, divisor: int = 8, round_limit: float = 0.9
) -> int:
    """Scale a channel count and round it to a multiple of ``divisor`` (TF ``round_filters``).

    Rounds to the nearest multiple (never below ``divisor``) and adds one more ``divisor`` if that
    fell below ``round_limit`` of the target, so a layer never loses more than 10% of its width.
    """
    if channels <= 0 or multiplier <= 0:
        raise ConfigError(
            f"channels and multiplier must be positive, got channels={channels!r}, "
            f"multiplier={multiplier!r}"
        )
    target = channels * multiplier
    rounded = max(divisor, int(target + divisor / 2) // divisor * divisor)
    if rounded < round_limit * target:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, multiplier: float = 1.0) -> int:
    """Scale a stage's block count, rounding up (TF ``round_repeats``)."""
    if repeats <= 0 or multiplier <= 0:
        raise ConfigError(
            f"repeats and multiplier must be positive, got repeats={repeats!r}, "
            f"multiplier={multiplier!r}"
        )
    return math.ceil(multiplier * repeats)


def round_resolution(base: int, multiplier: float = 1.0, multiple: int = 8) -> int:
    """Scale an input resolution and round it to the *nearest* multiple of ``multiple`` (>= it).

    Why a multiple of 8: the first three stride-2 stages then divide the image exactly (no
    asymmetric remainder at strides 2, 4 and 8), and vectorised kernels like sizes that are
    multiples of 8. Why nearest rather than up: compute grows with r^2, and rounding to the
    nearest value keeps a model's MACs closest to the budget gamma^(2 phi) asks for.
    """
    if base <= 0 or multiplier <= 0:
        raise ConfigError(
            f"base and multiplier must be positive, got base={base!r}, multiplier={multiplier!r}"
        )
    return max(multiple, round(base * multiplier / multiple) * multiple)


def parse_phis(text: str) -> list[float]:
    """``'0..7'`` -> [0, 1, ..., 7]; ``'0,1,2.5'`` -> [0, 1, 2.5]; ``'3'`` -> [3]."""
    try:
        if ".." in text:
            lo, hi = (float(v) for v in text.split(".."))
            if hi < lo or lo != int(lo) or hi != int(hi):
                raise ValueError(text)
            phis = [float(v) for v in range(int(lo), int(hi) + 1)]
        else:
            phis = [float(v) for v in text.split(",") if v.strip()]
        if not phis or any(not math.isfinite(p) or p < 0 for p in phis):
            raise ValueError(text)
        return phis
    except ValueError:
        raise ConfigError(
            f"phi expects a range of whole numbers like '0..7' or a list of numbers >= 0 like "
            f"'0,1,2.5', got {text!r}"
        ) from None


def drop_path_rates(total_blocks: int, rate: float) -> list[float]:
    """Linear stochastic-depth ramp: block i of N drops its residual branch with rate * i / N."""
    if total_blocks < 0:
        raise ConfigError(f"total_blocks must be >= 0, got {total_blocks!r}")
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"drop-path rate must be in [0, 1), got {rate!r}")
    return [rate * i / total_blocks for i in range(total_blocks)]
