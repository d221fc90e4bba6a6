"""Running trials: a tiny real search end to end, resume, failures, process pool and Ray."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from effnet.cost import profile_spec
from effnet.host import usable_cores
from effnet.lab import Grid, RunOptions, compare, run_trial, run_trials, search
from effnet.lab.experiment import SUMMARY_COLUMNS
from effnet.lab.runner import load_results
from effnet.specs import spec_from_dict
from helpers.lab import (
    echo_trial,
    failing_trial,
    make_two_class_folder,
    tiny_base,
    tiny_data,
    tiny_recipe,
)

# three triples within 5% of 2: (1.2, 1.1, 1.15), (1.2, 1.1, 1.2), (1.25, 1.1, 1.15); on the
# 7-block tiny base alpha 1.2 and 1.25 add the same block, so the first and last are one model
TINY_GRID = "alpha=1.2,1.25 beta=1.1 gamma=1.15,1.2"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_two_class_folder(tmp_path_factory.mktemp("lab-data"))


@pytest.fixture(scope="module")
def searched(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("lab-search")
    result = search(
        tiny_data(folder),
        tiny_base(),
        out,
        grid=Grid.parse(TINY_GRID),
        macs_tolerance=0.5,
        recipe=tiny_recipe(),
        run=RunOptions(progress=False),
    )
    return result


def test_a_tiny_search_runs_end_to_end_and_writes_results_and_plot(searched):
    out = searched.out_dir
    assert len(searched.candidates) == 3 and len(searched.ranking) == 2
    assert sorted(searched.report.ran) == ["a1.2_b1.1_g1.15_s0", "a1.2_b1.1_g1.2_s0"]
    by_key = {r["key"]: r for r in searched.ranking}
    assert by_key["a1.2_b1.1_g1.15"]["same_model"] == ["a1.25_b1.1_g1.15"]
    assert by_key["a1.2_b1.1_g1.2"]["same_model"] == []
    accs = [r["val_acc_mean"] for r in searched.ranking]
    assert accs == sorted(accs, reverse=True)
    assert searched.winner is searched.ranking[0]
    assert searched.report.ran and not searched.report.failed

    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and list(rows[0]) == list(SUMMARY_COLUMNS)
    summary = json.loads((out / "results.json").read_text())
    assert summary["winner"]["key"] == searched.winner["key"]
    assert "SCALED DOWN" in json.loads((out / "lab.json").read_text())["base_note"]
    with Image.open(out / "search.png") as png:
        assert png.format == "PNG" and png.size == (800, 500)

    for result in load_results(out):
        assert result["status"] == "ok" and len(result["history"]) == 1
        spec = spec_from_dict(result["spec"])
        # MACs and params are measured on the trained model, and agree with the spec's count
        assert result["macs"] == profile_spec(spec, num_classes=2).macs
        assert result["resolution"] == spec.resolution
        assert result["latency_ms"] > 0 and 0 <= result["val_acc"] <= 1
        assert result["val_images"] > 0 and result["train_images"] > result["val_images"]


def test_rerunning_a_finished_search_resumes_without_running_anything(searched, folder):
    again = search(
        tiny_data(folder),
        tiny_base(),
        searched.out_dir,
        grid=Grid.parse(TINY_GRID),
        macs_tolerance=0.5,
        recipe=tiny_recipe(),
        run=RunOptions(progress=False),
        trial_fn=failing_trial,  # would record failures if anything ran
    )
    assert again.report.ran == [] and again.report.failed == []
    assert sorted(again.report.resumed) == sorted(searched.report.ran)
    assert [r["key"] for r in again.ranking] == [r["key"] for r in searched.ranking]


def test_a_trial_is_reproducible_from_its_recorded_config(searched):
    first = load_results(searched.out_dir)[0]
    config = {k: first[k] for k in ("id", "seed", "spec", "data", "recipe")}
    again = run_trial(config, threads=first["threads"])
    for key in ("train_loss", "val_loss", "val_acc", "test_acc", "macs", "params"):
        assert again[key] == first[key], key


def _fake_search(folder, out, accuracy) -> object:
    """The tiny search with a stand-in trial whose accuracy is ``accuracy(macs)``."""

    def trial(config: dict, threads: int) -> dict:
        result = {k: v for k, v in config.items() if k not in ("spec", "data", "recipe")}
        macs = profile_spec(spec_from_dict(config["spec"]), num_classes=2).macs
        return {**result, "status": "ok", "val_acc": accuracy(macs), "macs": macs}

    return search(
        tiny_data(folder),
        tiny_base(),
        out,
        grid=Grid.parse(TINY_GRID),
        macs_tolerance=0.5,
        recipe=tiny_recipe(),
        run=RunOptions(progress=False),
        trial_fn=trial,
    )


def test_a_winner_only_by_the_macs_tie_break_is_reported_as_tied(folder, tmp_path):
    # 0.1 * 3 and 0.3: equal accuracies that differ in the last bit still tie
    result = _fake_search(folder, tmp_path / "tie", lambda m: 0.3 if m % 2 else 0.1 * 3)
    first, second = result.ranking
    assert first["macs"] < second["macs"]  # fewer MACs breaks the tie
    assert result.tied_with_winner == [second["key"]]
    summary = json.loads((tmp_path / "tie" / "results.json").read_text())
    assert summary["tied_with_winner"] == [second["key"]]

    separated = _fake_search(folder, tmp_path / "clear", lambda m: 1e-9 * m)
    assert separated.winner["macs"] > separated.ranking[1]["macs"]  # accuracy decides first
    assert separated.tied_with_winner == []


def _echo_trials(n: int, **extra: object) -> list[dict]:
    return [{"id": f"t{i}", "seed": i, "recipe": {"epochs": 1}, **extra} for i in range(n)]


def test_resume_runs_only_the_missing_trials(tmp_path):
    first = run_trials(_echo_trials(3), tmp_path, trial_fn=echo_trial, progress=False)
    assert first.ran == ["t0", "t1", "t2"]
    (tmp_path / "trials" / "t1.json").unlink()
    ran: list[str] = []

    def counting(config: dict, threads: int) -> dict:
        ran.append(config["id"])
        return echo_trial(config, threads)

    second = run_trials(_echo_trials(3), tmp_path, trial_fn=counting, progress=False)
    assert ran == ["t1"] and sorted(second.resumed) == ["t0", "t2"]
    assert [r["id"] for r in second.results] == ["t0", "t1", "t2"]


def test_a_finished_trial_from_another_configuration_is_refused(tmp_path):
    run_trials(_echo_trials(1), tmp_path, trial_fn=echo_trial, progress=False)
    changed = [{**t, "recipe": {"epochs": 2}} for t in _echo_trials(1)]
    with pytest.raises(ValueError, match="different configuration"):
        run_trials(changed, tmp_path, trial_fn=echo_trial, progress=False)


def test_a_failed_trial_is_recorded_and_retried_next_time(tmp_path):
    report = run_trials(_echo_trials(2), tmp_path, trial_fn=failing_trial, progress=False)
    assert [f["id"] for f in report.failed] == ["t0", "t1"] and report.results == []
    failed = json.loads((tmp_path / "trials" / "t0.failed.json").read_text())
    assert "was not supposed to run" in failed["error"]
    retry = run_trials(_echo_trials(2), tmp_path, trial_fn=echo_trial, progress=False)
    assert retry.ran == ["t0", "t1"]
    assert not (tmp_path / "trials" / "t0.failed.json").exists()


def test_duplicate_ids_and_unknown_backends_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        run_trials(_echo_trials(1) * 2, tmp_path, trial_fn=echo_trial)
    with pytest.raises(ValueError, match="unknown backend"):
        run_trials(_echo_trials(1), tmp_path, backend="dask", trial_fn=echo_trial)
    with pytest.raises(ValueError, match="--backend ray"):
        run_trials(_echo_trials(1), tmp_path, address="auto", trial_fn=echo_trial)


def test_a_tiny_compare_runs_in_a_spawned_process_pool(folder, tmp_path):
    result = compare(
        tiny_data(folder),
        tiny_base(),
        tmp_path,
        targets=(2.0,),
        strategies=("width", "resolution"),
        recipe=tiny_recipe(latency_runs=0),
        run=RunOptions(backend="process", workers=2, progress=False),
    )
    assert result.report.backend == "process" and result.report.workers == 2
    assert result.report.threads == max(1, usable_cores() // 2)
    assert sorted(p["strategy"] for p in result.points) == ["base", "resolution", "width"]
    for p in result.points:
        assert abs(p["macs_ratio"] / p["target"] - 1) <= 0.05
    with Image.open(tmp_path / "compare.png") as png:
        assert png.size == (800, 500)
    assert result.verdicts == []  # no compound curve asked for, so no verdict


def test_the_ray_backend_runs_a_tiny_search_on_a_local_ray_instance(folder, tmp_path):
    pytest.importorskip(
        "ray", reason="Ray is the optional extra effnet[ray]; install it to test --backend ray"
    )
    result = search(
        tiny_data(folder),
        tiny_base(),
        tmp_path,
        grid=Grid.parse("alpha=1.2 beta=1.1 gamma=1.15,1.2"),
        macs_tolerance=0.5,
        recipe=tiny_recipe(latency_runs=0),
        run=RunOptions(backend="ray", progress=False),
    )
    assert result.report.backend == "ray" and not result.report.failed
    assert len(result.ranking) == 2
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == [
        "a1.2_b1.1_g1.15_s0.json",
        "a1.2_b1.1_g1.2_s0.json",
    ]
    assert (tmp_path / "search.png").is_file()
