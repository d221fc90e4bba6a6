from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from effnet.scaling import (
    PAPER,
    Coefficients,
    drop_path_rates,
    multipliers,
    round_channels,
    round_repeats,
    round_resolution,
)

phis = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
channels = st.integers(min_value=1, max_value=2048)
widths = st.floats(min_value=0.1, max_value=6.0, allow_nan=False)


def test_paper_coefficients_and_budget() -> None:
    assert (PAPER.alpha, PAPER.beta, PAPER.gamma) == (1.2, 1.1, 1.15)
    assert PAPER.flops_factor == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    assert PAPER.flops_factor == pytest.approx(1.920, abs=1e-3)
    assert PAPER.meets_budget(2.0, tolerance=0.05)
    assert not PAPER.meets_budget(2.0, tolerance=0.01)
    assert not Coefficients(1.5, 1.3, 1.3).meets_budget(2.0)
    with pytest.raises(ValueError, match=r"alpha \* beta\^2 \* gamma\^2 = 4\.284"):
        Coefficients(1.5, 1.3, 1.3).check_budget()
    with pytest.raises(ValueError, match=r"alpha must be >= 1\.0"):
        Coefficients(0.9, 1.1, 1.1)


@given(phis, phis)
def test_multipliers_monotone_in_phi(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    m_lo, m_hi = multipliers(lo), multipliers(hi)
    assert m_lo.depth <= m_hi.depth
    assert m_lo.width <= m_hi.width
    assert m_lo.resolution <= m_hi.resolution


def test_multipliers_values() -> None:
    m = multipliers(2.5)
    assert m.depth == pytest.approx(1.2**2.5)
    assert m.width == pytest.approx(1.1**2.5)
    assert m.resolution == pytest.approx(1.15**2.5)
    assert multipliers(0) == multipliers(0.0)
    with pytest.raises(ValueError, match="phi must be"):
        multipliers(-1)


@given(channels, widths)
def test_round_channels_properties(c: int, w: float) -> None:
    r = round_channels(c, w)
    assert r % 8 == 0
    assert r >= 8
    assert r >= 0.9 * c * w  # never loses more than 10% of the target width


@given(channels, widths, widths)
def test_round_channels_monotone_in_width(c: int, w1: float, w2: float) -> None:
    lo, hi = sorted((w1, w2))
    assert round_channels(c, lo) <= round_channels(c, hi)


def test_round_channels_tf_reference_values() -> None:
    # values the TF reference computes for the published variants
    assert round_channels(32, 1.1) == 32  # B2 stem
    assert round_channels(16, 1.2) == 24  # B3 stage 1: 19.2 -> 16 is < 90% -> 24
    assert round_channels(1280, 2.2) == 2816  # B8 head
    assert round_channels(320, 4.3) == 1376  # L2 last stage
    assert round_channels(16, 1.2, round_limit=0.0) == 16  # V2's rounding has no 90% guard


@given(st.integers(1, 20), st.floats(1.0, 6.0))
def test_round_repeats_is_ceil(r: int, d: float) -> None:
    assert round_repeats(r, d) == math.ceil(r * d)
    assert round_repeats(r, d) >= r


@given(phis)
def test_round_resolution_multiple_of_8_and_nearest(phi: float) -> None:
    target = 224 * PAPER.gamma**phi
    r = round_resolution(224, PAPER.gamma**phi)
    assert r % 8 == 0
    assert abs(r - target) <= 4


def test_round_resolution_examples() -> None:
    assert round_resolution(224, 1.0) == 224
    assert round_resolution(224, 1.15) == 256  # 257.6 -> 256
    assert round_resolution(224, 1.15**2) == 296  # 296.24 -> 296


def test_drop_path_ramp() -> None:
    rates = drop_path_rates(16, 0.2)
    assert rates[0] == 0.0
    assert rates[8] == pytest.approx(0.1)
    assert rates[-1] == pytest.approx(0.2 * 15 / 16)
    assert all(a < b for a, b in itertools.pairwise(rates))
    with pytest.raises(ValueError):
        drop_path_rates(4, 1.0)
