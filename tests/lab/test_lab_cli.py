"""``effnet lab``: the commands parse, call the library and print tables or JSON."""

from __future__ import annotations

import argparse
import json

import pytest

from effnet.cli import lab
from effnet.cost import profile_spec
from helpers.lab import make_two_class_folder, tiny_base

TINY_BASE = [
    "--base-width",
    "0.25",
    "--base-depth",
    "0.25",
    "--base-resolution",
    "32",
    "--resolution-multiple",
    "4",
]


def run(argv: list[str]) -> int:
    # the lead registers `lab` in effnet.cli; a private parser keeps this test independent of it
    parser = argparse.ArgumentParser(prog="effnet")
    lab.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_two_class_folder(tmp_path_factory.mktemp("cli-data"))


def test_ladder_of_a_scaled_down_family_shows_macs_against_budget(capsys):
    assert run(["lab", "ladder", "--phi", "0..2", "--num-classes", "2", *TINY_BASE]) == 0
    out = capsys.readouterr().out
    assert "SCALED DOWN from efficientnet_b0" in out and "MACs/target" in out
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert [r.split()[0] for r in rows] == ["0", "1", "2"]
    # a half-MMAC family is shown in MMACs, not as 0.001 GMACs
    header = next(line for line in out.splitlines() if line.startswith("phi"))
    assert header.split()[5] == "MMACs"
    macs = profile_spec(tiny_base().spec(), num_classes=2).macs
    assert rows[0].split()[5] == f"{macs / 1e6:.3f}" != "0.001"


def test_ladder_json_has_one_rung_per_phi(capsys):
    assert run(["lab", "ladder", "--phi", "0,1", "--alpha", "1.25", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["alpha"] == 1.25 and [r["phi"] for r in data["rungs"]] == [0.0, 1.0]
    assert data["rungs"][0]["vs_target"] == 1.0 and not data["base"]["scaled_down"]


def test_compare_dry_run_lists_matched_models_without_training(folder, tmp_path, capsys):
    argv = ["lab", "compare", "--data", str(folder), "--dry-run", "--out", str(tmp_path)]
    argv += [*TINY_BASE, "--strategies", "depth,width,resolution", "--seeds", "0,1"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "SCALED DOWN" in out and "7 model(s) x 2 seed(s) = 14 trial(s)" in out
    assert not (tmp_path / "trials").exists()


def test_search_dry_run_json_measures_every_triple(folder, capsys):
    argv = ["lab", "search", "--data", str(folder), "--dry-run", "--json", *TINY_BASE]
    assert run([*argv, "--grid", "alpha=1.2,1.25 beta=1.1 gamma=1.15"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(c["alpha"], c["beta"], c["gamma"]) for c in data["candidates"]] == [
        (1.2, 1.1, 1.15),
        (1.25, 1.1, 1.15),
    ]
    assert all(c["macs_ratio"] > 1 for c in data["candidates"])


def test_a_one_trial_search_prints_the_ranking_and_the_winner(folder, tmp_path, capsys):
    argv = ["lab", "search", "--data", str(folder), "--split", "60/20/20", *TINY_BASE]
    argv += ["--grid", "alpha=1.2 beta=1.1 gamma=1.15", "--macs-tolerance", "0.5"]
    argv += ["--epochs", "1", "--batch-size", "4", "--latency-runs", "0", "--backend", "serial"]
    assert run([*argv, "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "winner: alpha=1.2, beta=1.1, gamma=1.15" in out
    assert "effnet lab ladder --alpha 1.2 --beta 1.1 --gamma 1.15 --base efficientnet_b0" in out
    assert (tmp_path / "search.png").is_file()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--targets", "two"], "--targets expects comma-separated numbers"),
        (["--seeds", "0,0"], "--seeds expects distinct whole numbers"),
        (["--strategies", "height"], "strategies must be among"),
    ],
)
def test_bad_flags_name_what_was_expected(folder, flags, message):
    with pytest.raises(ValueError, match=message):
        run(["lab", "compare", "--data", str(folder), "--dry-run", *TINY_BASE, *flags])
