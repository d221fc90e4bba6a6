"""The coefficient grid of the phi = 1 search (paper section 3.3, step 2). Pure, no torch.

The paper fixes phi = 1, assumes twice the compute is available, and grid-searches alpha, beta
and gamma under alpha * beta^2 * gamma^2 ~= 2. :func:`enumerate_grid` lists the triples of a
:class:`Grid` that satisfy that constraint within a relative tolerance, using the same test as
:meth:`effnet.scaling.Coefficients.meets_budget`, so a triple the lab tries is one the rest of
the library accepts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from effnet.errors import ConfigError
from effnet.scaling import PAPER, Coefficients

__all__ = ["DEFAULT_SPAN", "DEFAULT_STEP", "Grid", "axis", "default_grid", "enumerate_grid"]

DEFAULT_STEP = 0.05
DEFAULT_SPAN = 0.10
"""The default grid runs from paper - 0.10 to paper + 0.10 in steps of 0.05 on each axis."""

_AXES = ("alpha", "beta", "gamma")
# Grid values are printed, hashed into trial ids and compared against file names: keep them
# free of binary noise like 1.1500000000000001.
_DIGITS = 6


def axis(low: float, high: float, step: float = DEFAULT_STEP) -> tuple[float, ...]:
    """``low, low + step, ..., high`` (inclusive, to 1e-9), values below 1.0 dropped.

    A coefficient below 1 would *shrink* that dimension as phi grows, which
    :class:`~effnet.scaling.Coefficients` rejects, so the axis simply starts at 1.0.
    """
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(step)):
        raise ConfigError(f"grid axis needs finite numbers, got {low}:{high}:{step}")
    if step <= 0:
        raise ConfigError(f"grid step must be > 0, got {step}")
    if high < low:
        raise ConfigError(f"grid axis runs low:high with low <= high, got {low}:{high}")
    count = math.floor((high - low) / step + 1e-9) + 1
    values = (round(low + i * step, _DIGITS) for i in range(count))
    return tuple(v for v in values if v >= 1.0)


@dataclass(frozen=True)
class Grid:
    """Candidate values per coefficient; :func:`enumerate_grid` takes their product."""

    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    gamma: tuple[float, ...]

    def __post_init__(self) -> None:
        for name in _AXES:
            values = getattr(self, name)
            if not values:
                raise ConfigError(
                    f"the grid has no {name} values >= 1.0; give {name}=LOW:HIGH with HIGH >= 1"
                )
            bad = [v for v in values if not (math.isfinite(v) and v >= 1.0)]
            if bad:
                raise ConfigError(f"{name} values must be finite and >= 1.0, got {bad}")

    @property
    def size(self) -> int:
        """Number of triples before the budget filter."""
        return len(self.alpha) * len(self.beta) * len(self.gamma)

    def describe(self) -> str:
        return "; ".join(
            f"{name} {', '.join(f'{v:g}' for v in getattr(self, name))}" for name in _AXES
        )

    @classmethod
    def parse(cls, text: str, start: Grid | None = None) -> Grid:
        """``"alpha=1.1:1.3 beta=1.0,1.05,1.1 gamma=1.1:1.25:0.05"`` -> a grid.

        Each axis is ``LOW:HIGH[:STEP]`` (inclusive, step 0.05 by default) or a comma list.
        Axes are separated by spaces or semicolons; an axis not named keeps its value from
        ``start`` (default: :func:`default_grid`).
        """
        grid = start or default_grid()
        values = {name: getattr(grid, name) for name in _AXES}
        for part in re.split(r"[;\s]+", text.strip()):
            if not part:
                continue
            name, sep, spec = part.partition("=")
            name = name.strip().lower()
            if not sep or name not in _AXES:
                raise ConfigError(
                    f"expected grid axes like 'alpha=1.1:1.3 beta=1.0,1.1 gamma=1.1:1.2:0.05', "
                    f"got {part!r} in {text!r}"
                )
            values[name] = _parse_axis(name, spec)
        return cls(**values)


def _parse_axis(name: str, spec: str) -> tuple[float, ...]:
    try:
        if ":" in spec:
            numbers = [float(v) for v in spec.split(":")]
            if len(numbers) not in (2, 3):
                raise ValueError
            return axis(*numbers)
        return tuple(sorted({round(float(v), _DIGITS) for v in spec.split(",") if v.strip()}))
    except ValueError as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise ConfigError(
            f"{name}={spec!r} is not a grid axis{detail}; expected LOW:HIGH, LOW:HIGH:STEP or "
            f"a comma list like 1.1,1.2"
        ) from None


def default_grid(
    center: Coefficients = PAPER, span: float = DEFAULT_SPAN, step: float = DEFAULT_STEP
) -> Grid:
    """``center +/- span`` in steps of ``step`` on each axis (values below 1.0 dropped)."""
    return Grid(
        alpha=axis(center.alpha - span, center.alpha + span, step),
        beta=axis(center.beta - span, center.beta + span, step),
        gamma=axis(center.gamma - span, center.gamma + span, step),
    )


def enumerate_grid(
    grid: Grid | None = None, budget: float = 2.0, tolerance: float = 0.05
) -> list[Coefficients]:
    """Every (alpha, beta, gamma) of ``grid`` with alpha * beta^2 * gamma^2 within
    ``tolerance`` (relative) of ``budget``, sorted by (alpha, beta, gamma).

    Raises when none qualifies, naming the range of products the grid does reach, so the fix
    (move the grid or widen the tolerance) is obvious.
    """
    grid = grid or default_grid()
    triples = [Coefficients(a, b, g) for a in grid.alpha for b in grid.beta for g in grid.gamma]
    kept = sorted(
        (c for c in triples if c.meets_budget(budget, tolerance)),
        key=lambda c: (c.alpha, c.beta, c.gamma),
    )
    if not kept:
        products = [c.flops_factor for c in triples]
        raise ConfigError(
            f"no (alpha, beta, gamma) in the grid has alpha * beta^2 * gamma^2 within "
            f"{tolerance:.0%} of {budget:g}: the grid's products run from {min(products):.3f} "
            f"to {max(products):.3f}; move the grid toward the budget or widen the tolerance"
        )
    return kept
