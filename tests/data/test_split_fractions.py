"""``--split`` text: fractions that do not sum to 100 (or 1) are an error, never rescaled."""

from __future__ import annotations

import pytest

from effnet.data import SplitFractions
from effnet.errors import ConfigError


@pytest.mark.parametrize("text", ["50/60", "0.5/0.6", "70/15/10", "30/30/30", "0.7/0.1/0.1"])
def test_fractions_that_do_not_sum_to_100_or_1(text: str) -> None:
    """``50/60`` was silently read as 45/55."""
    with pytest.raises(ConfigError, match=r"sum to 100.*or 1") as info:
        SplitFractions.parse(text)
    assert text in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("70/15/15", (0.70, 0.15, 0.15)),
        ("0.7/0.15/0.15", (0.70, 0.15, 0.15)),
        ("75/25", (0.75, 0.0, 0.25)),
        ("33.33/33.33/33.34", (0.3333, 0.3333, 0.3334)),
        ("100/0/0", (1.0, 0.0, 0.0)),
    ],
)
def test_fractions_that_sum_right(text: str, expected: tuple[float, float, float]) -> None:
    fr = SplitFractions.parse(text)
    assert (fr.train, fr.val, fr.test) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("text", ["nan/50/50", "inf/0/0", "-10/60/50", "0/50/50", ""])
def test_nonsense_fractions(text: str) -> None:
    with pytest.raises(ConfigError):
        SplitFractions.parse(text)


def test_nan_fraction_is_refused_directly() -> None:
    with pytest.raises(ConfigError, match="finite"):
        SplitFractions(val=float("nan"), test=0.1)
