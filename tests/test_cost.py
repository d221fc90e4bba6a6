from __future__ import annotations

import itertools

import pytest

import effnet
from effnet.cost import describe, ladder, profile, profile_spec
from effnet.scaling import Coefficients
from helpers.reference import PARAMS_1000, TORCHVISION_GMACS


def test_b0_gmacs_in_published_range() -> None:
    cost = profile_spec(effnet.get_spec("efficientnet_b0"))
    assert 0.38 <= cost.gmacs <= 0.41
    assert cost.params == PARAMS_1000["efficientnet_b0"]


@pytest.mark.parametrize("name", sorted(TORCHVISION_GMACS))
def test_macs_within_3_percent_of_torchvision(name: str) -> None:
    gmacs, size = TORCHVISION_GMACS[name]
    cost = profile_spec(effnet.get_spec(name), size)
    assert cost.gmacs == pytest.approx(gmacs, rel=0.03)


def test_counter_by_hand_on_one_conv_and_linear() -> None:
    # stem of B0 at 224: 32 x 112 x 112 outputs, each 3*3*3 MACs
    rows, cost = describe(effnet.get_spec("efficientnet_b0"))
    stem = rows[0]
    assert stem.macs == 32 * 112 * 112 * 27
    assert stem.params == 32 * 27 + 2 * 32  # conv weights + BN affine
    fc = rows[-1]
    assert fc.macs == 1280 * 1000 + 1280 * 7 * 7  # linear + global pool
    assert sum(r.params for r in rows) == cost.params
    assert sum(r.macs for r in rows) == cost.macs
    assert [r.output for r in rows[1:8]] == [
        "16x112x112",
        "24x56x56",
        "40x28x28",
        "80x14x14",
        "112x14x14",
        "192x7x7",
        "320x7x7",
    ]


def test_profile_of_a_real_model_matches_meta() -> None:
    model = effnet.create_model("efficientnet_lite0")
    assert profile(model, 224).macs == profile_spec(model.spec, 224).macs


def test_ladders() -> None:
    table = ladder([0, 1, 2, 3], "table")
    assert [r.name for r in table] == [f"efficientnet_b{i}" for i in range(4)]
    assert table[0].ratio == 1.0
    assert [r.target for r in table] == [1, 2, 4, 8]
    assert all(a.gmacs < b.gmacs for a, b in itertools.pairwise(table))
    formula = ladder([0, 1, 2], "formula")
    assert formula[1].resolution == 256 and formula[1].depth == pytest.approx(1.2)
    # the formula's MACs land near (alpha * beta^2 * gamma^2)^phi times phi = 0's; rounding the
    # repeats up (ceil) makes them overshoot, never undershoot by much
    for row in formula:
        assert 0.95 * row.target <= row.ratio <= 1.3 * row.target
    custom = ladder([1], "formula", Coefficients(1.4, 1.05, 1.1))
    assert custom[0].target == pytest.approx(1.4 * 1.05**2 * 1.1**2)
    with pytest.raises(ValueError, match=r"no variant for phi=2\.5"):
        ladder([2.5], "table")
