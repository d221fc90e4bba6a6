"""Models of an experiment: the base, matched-MACs construction, compound families."""

from __future__ import annotations

import pytest

from effnet.cost import ladder, profile_spec
from effnet.factory import create_model
from effnet.lab import (
    LabBase,
    family_ladder,
    family_spec,
    match_macs,
    plan_compare,
    resolve_base,
)
from effnet.scaling import PAPER, Coefficients
from effnet.specs import BASES, compound, scale, variant_spec
from helpers.lab import tiny_base


def _macs(spec) -> int:
    # profile_spec directly: independent of the lab's memoised measure()
    return profile_spec(spec, num_classes=2).macs


@pytest.mark.parametrize("target", [2.0, 4.0])
@pytest.mark.parametrize("strategy", ["depth", "width", "resolution"])
def test_one_dimensional_models_land_within_5_percent_of_the_target(strategy, target):
    base = tiny_base()
    base_spec = base.spec()
    c = match_macs(base, strategy, target, num_classes=2)
    ratio = _macs(c.spec) / _macs(base_spec)
    assert abs(ratio / target - 1) <= 0.05, (strategy, target, ratio)
    assert c.matched and c.ratio == pytest.approx(ratio)
    # exactly one dimension moved
    same_depth = [s.repeats for s in c.spec.stages] == [s.repeats for s in base_spec.stages]
    same_width = [s.out_channels for s in c.spec.stages] == [
        s.out_channels for s in base_spec.stages
    ] and c.spec.head_channels == base_spec.head_channels
    same_resolution = c.spec.resolution == base_spec.resolution
    moved = {"depth": not same_depth, "width": not same_width, "resolution": not same_resolution}
    assert moved == {k: k == strategy for k in moved}


def test_compound_is_solved_for_phi_with_the_given_coefficients():
    base = tiny_base()
    c = match_macs(base, "compound", 4.0, coeffs=PAPER, num_classes=2)
    assert c.matched and c.phi is not None and c.phi > 0
    assert c.spec == family_spec(c.phi, PAPER, base)
    assert abs(_macs(c.spec) / _macs(base.spec()) / 4.0 - 1) <= 0.05


def test_a_target_rounding_cannot_reach_is_refused_with_the_fixes():
    # at this base compound 2x jumps from ~1.6x to ~2.2x: no phi lands within 5%
    with pytest.raises(ValueError, match=r"compound at 2x reaches .*--dry-run"):
        plan_compare(tiny_base(), (2.0,), num_classes=2)


def test_plan_compare_gives_the_base_and_one_model_per_strategy_and_target():
    base = resolve_base("efficientnet_b0", 0.4, 0.25, 64, resolution_multiple=4)
    plan = plan_compare(base, (2.0, 4.0), num_classes=2)
    assert [(c.strategy, c.target) for c in plan][:1] == [("base", 1.0)]
    assert sorted((c.strategy, c.target) for c in plan[1:]) == sorted(
        (s, t) for s in ("depth", "width", "resolution", "compound") for t in (2.0, 4.0)
    )
    assert all(c.matched for c in plan)


def test_a_scaled_down_base_says_so_and_composes_with_the_root():
    base = resolve_base("efficientnet_b0", width=0.5, depth=0.5, resolution=64)
    assert base.scaled_down and "SCALED DOWN" in base.describe()
    assert base.spec() == scale(BASES["efficientnet"], 0.5, 0.5, 64, name=base.spec().name)
    # one rounding from the root: B0 at depth 0.5 * 1.2 = 0.6, not ceil(1.2 * rounded repeats)
    assert [s.repeats for s in base.spec(depth=1.2).stages] == [1, 2, 2, 2, 2, 3, 1]
    full = resolve_base("efficientnet_b0")
    assert not full.scaled_down and "not scaled down" in full.describe()
    assert full.spec().stages == variant_spec("efficientnet_b0").stages


def test_bases_from_a_scaled_variant_and_bad_names():
    b2 = resolve_base("efficientnet_b2", width=0.5)
    assert (b2.root, b2.width, b2.depth, b2.resolution) == ("efficientnet", 0.55, 1.2, 260)
    with pytest.raises(KeyError, match="unknown base"):
        resolve_base("efficientnet_b99")
    with pytest.raises(ValueError, match="resolution >= 8"):
        LabBase("efficientnet", resolution=4)


@pytest.mark.parametrize("phi", [1.0, 2.0, 3.0])
def test_an_unscaled_family_is_the_librarys_compound_family(phi):
    found = Coefficients(1.15, 1.15, 1.15)
    lab = family_spec(phi, found, resolve_base("efficientnet"))
    lib = compound(phi, found, "efficientnet")
    assert (lab.stages, lab.head_channels, lab.resolution) == (
        lib.stages,
        lib.head_channels,
        lib.resolution,
    )


def test_found_coefficients_make_a_family_whose_macs_track_budget_to_the_phi():
    found = Coefficients(1.15, 1.15, 1.15)  # 1.15^5 = 2.01
    rungs = family_ladder([0, 1, 2, 3, 4], found, resolve_base("efficientnet"))
    assert [r.ratio for r in rungs] == sorted(r.ratio for r in rungs)
    assert rungs[0].ratio == 1.0 and rungs[0].target == 1.0
    for r in rungs[1:]:
        # rounding (ceil on repeats, channels to 8, resolution to 8 px) overshoots most at
        # phi = 1 (every 1-block stage becomes 2 blocks: 1.37x here), less further up
        assert 0.9 < r.vs_target < 1.45, (r.phi, r.ratio, r.target)
    growth = (rungs[4].ratio / rungs[1].ratio) ** (1 / 3)  # per step of phi, phi = 1..4
    assert growth == pytest.approx(found.flops_factor, rel=0.10)
    # the library's own ladder and create_model agree with the lab's family
    lib = ladder([0, 1, 2, 3, 4], "formula", found, "efficientnet")
    assert [round(r.ratio, 6) for r in lib] == [round(r.ratio, 6) for r in rungs]
    model = create_model(
        "efficientnet", phi=2, alpha=found.alpha, beta=found.beta, gamma=found.gamma
    )
    assert sum(p.numel() for p in model.parameters()) == rungs[2].params


def test_a_scaled_down_familys_ladder_is_measured_from_that_base():
    base = tiny_base()
    rungs = family_ladder([0, 1, 2], PAPER, base, num_classes=2)
    assert rungs[0].resolution == 32 and rungs[0].macs == _macs(base.spec())
    assert rungs[2].resolution == base.scaled_resolution(PAPER.gamma**2)
