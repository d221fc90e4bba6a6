"""The coefficient grid: the budget constraint, its tolerance, and the grid syntax."""

from __future__ import annotations

import itertools

import pytest

from effnet.lab.grid import Grid, axis, default_grid, enumerate_grid
from effnet.scaling import PAPER


@pytest.mark.parametrize(("budget", "tolerance"), [(2.0, 0.05), (2.0, 0.01), (3.0, 0.10)])
def test_enumerate_keeps_exactly_the_triples_within_tolerance(budget, tolerance):
    grid = Grid(axis(1.0, 1.5, 0.05), axis(1.0, 1.4, 0.05), axis(1.0, 1.4, 0.05))
    kept = {(c.alpha, c.beta, c.gamma) for c in enumerate_grid(grid, budget, tolerance)}
    assert kept  # the grid spans every budget tested
    for a, b, g in itertools.product(grid.alpha, grid.beta, grid.gamma):
        product = a * b * b * g * g
        inside = abs(product - budget) <= tolerance * budget
        assert ((a, b, g) in kept) == inside, (a, b, g, product)


def test_default_grid_is_paper_plus_minus_a_tenth_in_steps_of_005():
    grid = default_grid()
    assert grid.alpha == (1.1, 1.15, 1.2, 1.25, 1.3)
    assert grid.beta == (1.0, 1.05, 1.1, 1.15, 1.2)
    assert grid.gamma == (1.05, 1.1, 1.15, 1.2, 1.25)
    triples = enumerate_grid()
    assert PAPER in triples  # 1.92 is 4% under 2: inside the default 5%
    assert len(triples) == 29
    assert triples == sorted(triples, key=lambda c: (c.alpha, c.beta, c.gamma))


def test_a_tight_tolerance_drops_the_papers_own_triple():
    assert PAPER not in enumerate_grid(default_grid(), 2.0, 0.01)


def test_axis_is_inclusive_rounded_and_starts_at_one():
    assert axis(1.1, 1.3, 0.1) == (1.1, 1.2, 1.3)
    assert axis(0.9, 1.1, 0.05) == (1.0, 1.05, 1.1)  # below 1 would shrink as phi grows
    assert all(len(repr(v)) <= 6 for v in axis(1.0, 2.0, 0.05))  # no 1.1500000000000001


def test_grid_parse_ranges_lists_and_untouched_axes():
    grid = Grid.parse("alpha=1.1:1.2 beta=1.0,1.1;gamma=1.1:1.3:0.1")
    assert grid.alpha == (1.1, 1.15, 1.2)
    assert grid.beta == (1.0, 1.1)
    assert grid.gamma == (1.1, 1.2, 1.3)
    assert Grid.parse("beta=1.05").alpha == default_grid().alpha


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("delta=1.1", "expected grid axes"),
        ("alpha=1.3:1.1", "low <= high"),
        ("alpha=abc", "not a grid axis"),
        ("alpha=0.5:0.9", "no alpha values >= 1.0"),
        ("beta=0.9,1.1", ">= 1.0"),
    ],
)
def test_grid_parse_errors_say_what_was_expected(text, message):
    with pytest.raises(ValueError, match=message):
        Grid.parse(text)


def test_an_empty_selection_names_the_products_the_grid_reaches():
    grid = Grid((1.0,), (1.0,), (1.0, 1.1))
    with pytest.raises(ValueError, match=r"run from 1\.000 to 1\.210"):
        enumerate_grid(grid, 2.0, 0.05)
