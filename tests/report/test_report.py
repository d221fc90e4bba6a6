"""report.html from a real (tiny) run, from given predictions, and from a bare directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from effnet.cli import main
from effnet.host import torch_threads
from effnet.report import (
    Predictions,
    expected_calibration_error,
    load_predictions,
    save_predictions,
    write_report,
)
from effnet.report.sections import summary_block
from helpers.report import make_run
from helpers.torch_threads import one_torch_thread as one_torch_thread  # autouse

pytest.importorskip("matplotlib")
pytest.importorskip("captum")
pytestmark = pytest.mark.filterwarnings("ignore:skipping")

SECTIONS = ("summary", "curves", "confusion", "per-class", "gallery", "calibration", "config")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with torch_threads(1):
        return make_run(tmp_path_factory.mktemp("report"))


def _ids(text: str) -> set[str]:
    return set(re.findall(r'<section id="([^"]+)"', text))


def test_report_of_a_run_recomputes_and_saves_predictions(run: Path) -> None:
    from effnet.weights import read_state_dict, write_safetensors

    assert (run / "report.html").is_file()  # the run wrote its own; now make it an older run:
    for old in run.glob("predictions_*.npz"):  # no saved predictions,
        old.unlink()
    for name in ("best.safetensors", "last.safetensors"):  # no stored temperature
        weights, meta = read_state_dict(run / name)
        meta.pop("temperature", None)
        write_safetensors(run / name, weights, meta)
    path = write_report(run)
    assert path == run / "report.html"
    text = path.read_text()
    assert _ids(text) >= {*SECTIONS, "split"}
    # the predictions it had to compute are kept for next time: the run's test and val splits
    test, val = load_predictions(run, "test"), load_predictions(run, "val")
    assert test is not None and val is not None
    record = json.loads((run / "data.json").read_text())["split"]["splits"]
    assert [Path(p).name for p in test.paths] == [Path(f).name for f, _ in record["test"]["files"]]
    # the page's numbers are the run's: same checkpoint, same images, same metrics
    summary = json.loads((run / "report.json").read_text())["test"]
    assert f"test accuracy {100 * summary['accuracy']:.1f}%" in text
    assert f"balanced accuracy {100 * summary['balanced_accuracy']:.1f}%" in text
    # the skipped file is listed with its reason
    assert "truncated.png" in text and "skipped-table" in text
    # self-contained: every image inline, nothing fetched
    sources = re.findall(r'<img[^>]* src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', text) and "<link" not in text
    # one map per gallery picture: 24 gallery images at most, 6 test images here
    assert len(re.findall(r'alt="class-activation map', text)) == len(test)


def test_cli_writes_the_report_and_prints_its_path(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(run), "--gallery", "2"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("report.html") and Path(out).is_file()
    assert len(re.findall(r'alt="class-activation map', Path(out).read_text())) <= 4


def test_given_predictions_and_temperature_win(run: Path) -> None:
    classes = ("blob", "empty")
    paths = [str(run / "missing" / f"img{i}.png") for i in range(40)]
    targets = torch.tensor([0] * 30 + [1] * 10)
    logits = torch.zeros(40, 2)
    # always "blob", more confident for later images: accuracy 75%, balanced accuracy 50%
    logits[:, 0] = 1.0 + 0.05 * torch.arange(40)
    given = Predictions.create("test", paths, targets, logits, classes)
    text = write_report(run, predictions=[given], temperature=2.0, gallery=3).read_text()
    assert "test accuracy 75.0%" in text and "balanced accuracy 50.0%" in text
    assert 'id="gap-warning"' in text  # 25 points apart
    assert "Given by the training run." in text and ">2.00</td>" in text
    assert text.count("image file not found") == 6  # 3 + 3 cards; the files do not exist

    def shown(gallery_id: str) -> list[str]:
        part = text.split(f'id="{gallery_id}"', 1)[1].split("</section>", 1)[0]
        part = part.split('<div class="gallery"', 1)[0]  # this gallery only
        return re.findall(r"(img\d+)\.png", part)

    # the most confident mistakes first; the least confident correct predictions first
    assert shown("gallery-mistakes") == ["img39", "img38", "img37"]
    assert shown("gallery-unsure") == ["img0", "img1", "img2"]


def test_bare_directory_with_predictions_only(tmp_path: Path) -> None:
    """What ``effnet evaluate --out DIR`` will leave: predictions and no run files."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(60, 3, generator=gen) * 3
    targets = torch.randint(0, 3, (60,), generator=gen)
    save_predictions(tmp_path, "eval", [f"x{i}.png" for i in range(60)], targets, logits, "abc")
    text = write_report(tmp_path, recompute=False).read_text()
    assert _ids(text) >= set(SECTIONS)
    assert "eval accuracy" in text and "No metrics.jsonl." in text
    assert "No config.yaml" in text and "image file not found" in text
    assert "No held-out predictions to fit a temperature on" in text


def test_calibration_measures_the_model_s_own_probabilities(tmp_path: Path) -> None:
    """With TTA the page scores the averaged output but calibrates the unflipped view's logits
    (what predict serves and the stored temperature divides)."""
    gen = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 3, (80,), generator=gen)
    view = torch.randn(80, 3, generator=gen) * 4
    averaged = (view.softmax(1) * 0.5 + 0.5 / 3).log()  # softer, same argmax
    pred = Predictions.create(
        "test", [f"x{i}.png" for i in range(80)], targets, averaged, "abc", view
    )
    text = write_report(tmp_path, predictions=[pred], temperature=2.0, recompute=False).read_text()
    raw = expected_calibration_error(view.softmax(1), targets)
    scaled = expected_calibration_error((view / 2.0).softmax(1), targets)
    assert f">{raw:.4f}</td>" in text and f">{scaled:.4f}</td>" in text
    assert "the accuracy above averages the test-time flips" in text


def test_predictions_round_trip(tmp_path: Path) -> None:
    logits = torch.randn(5, 3)
    path = save_predictions(tmp_path, "val", [Path("a.png")] * 5, [0, 1, 2, 0, 1], logits, "xyz")
    assert path.name == "predictions_val.npz"
    back = load_predictions(tmp_path, "val")
    assert back is not None and back.classes == ("x", "y", "z") and back.paths[0] == "a.png"
    assert torch.equal(back.logits, logits) and back.targets.tolist() == [0, 1, 2, 0, 1]
    assert load_predictions(tmp_path, "test") is None
    view = torch.randn(5, 3)  # with TTA: the unflipped view's logits travel beside
    save_predictions(tmp_path, "tta", ["a.png"] * 5, [0, 1, 2, 0, 1], logits, "xyz", view)
    back = load_predictions(tmp_path, "tta")
    assert back is not None and back.view_logits is not None
    assert torch.equal(back.view_logits, view) and torch.equal(back.model_logits, view)
    assert (
        torch.equal(back.logits, logits) and load_predictions(tmp_path, "val").view_logits is None
    )
    with pytest.raises(ValueError, match="logits of shape"):
        save_predictions(tmp_path, "val", ["a.png"], [0], torch.zeros(1, 2), "xyz")
    with pytest.raises(ValueError, match="split name"):
        save_predictions(tmp_path, "../x", ["a.png"], [0], torch.zeros(1, 3), "xyz")
    (tmp_path / "predictions_bad.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a predictions file"):
        load_predictions(tmp_path, "bad")


def _metrics(acc: float, bal: float) -> dict:
    per_class = {"a": {"recall": 0.9, "support": 90}, "b": {"recall": 0.1, "support": 10}}
    return {
        "accuracy": acc,
        "balanced_accuracy": bal,
        "macro_f1": 0.5,
        "num_samples": 100,
        "per_class": per_class,
    }


@pytest.mark.parametrize(("acc", "bal", "warned"), [(0.82, 0.578, True), (0.8, 0.71, False)])
def test_gap_warning_only_past_ten_points(acc: float, bal: float, warned: bool) -> None:
    html = summary_block(
        split="test",
        metrics=_metrics(acc, bal),
        config={"data": "elpv", "label_mode": "4class", "epochs": 12, "head_epochs": 2},
        data={},
        model_name="efficientnet_lite0",
        weights="default",
        wall_seconds=624,
    )
    assert ('id="gap-warning"' in html) is warned
    assert "10.4 min" in html and "2 head + 12 full epochs" in html
    if warned:
        assert "b 10.0% of 10" in html  # the worst class is named
