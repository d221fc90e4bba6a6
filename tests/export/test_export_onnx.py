"""ONNX / TorchScript / ExportedProgram export: parity with eager, static SAME pads, metadata."""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from effnet.cli import perf
from effnet.export import export_model, export_onnx, inspect_graph, model_from_source
from effnet.export.artifact import metadata_path, read_export_metadata
from effnet.predict import OnnxPredictor
from helpers.export import THREE, small_model, tiny_model
from helpers.torch_threads import one_torch_thread as one_torch_thread  # autouse


@pytest.mark.parametrize(("name", "overrides", "res"), THREE)
def test_onnx_export_matches_eager_in_onnx_runtime(
    tmp_path, name: str, overrides: dict, res: int
) -> None:
    model = small_model(name, res, **overrides)
    result = export_onnx(model, tmp_path / "m.onnx", dynamic_batch=True)
    assert result.parity_max_abs_diff <= 1e-4

    graph = onnx.load(str(result.path))
    summary = inspect_graph(graph)
    assert summary.opset >= 17
    assert summary.input_shape == ["batch", 3, res, res]
    # SAME padding is static: no Pad computed from Shape at run time (folded into Conv pads)
    assert summary.static_padding and summary.shape_ops == 0
    assert "BatchNormalization" not in summary.ops

    # an independent check through the deployment API, at a batch size not used by the export
    predictor = OnnxPredictor(result.path, threads=1)
    x = torch.randn(5, 3, res, res)
    with torch.inference_mode():
        ref = model(x).numpy()
    np.testing.assert_allclose(predictor.logits(x.numpy()), ref, atol=1e-4, rtol=0)


def test_same_padding_matters_at_even_sizes() -> None:
    """Why THREE runs Lite0 at 64 px: there SAME pads (0, 1), unlike symmetric padding."""
    model = small_model("efficientnet_lite0", 64, padding="same")
    sym = small_model("efficientnet_lite0", 64)  # same weights, symmetric padding
    sym.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert (model(x) - sym(x)).abs().max() > 1e-3


def test_metadata_travels_with_the_file(tmp_path) -> None:
    model = tiny_model(num_classes=3, resolution=48)
    model.class_names = ["cat", "dog", "eel"]
    result = export_onnx(model, tmp_path / "b0.onnx", dynamic_batch=False)
    side = json.loads(metadata_path(result.path).read_text())
    assert side["preprocess"]["input_size"] == 48
    assert side["classes"] == ["cat", "dog", "eel"]
    assert side["input_shape"] == [1, 3, 48, 48]
    assert side["parity_max_abs_diff"] <= 1e-4
    # without the sidecar the metadata embedded in the ONNX file is used
    metadata_path(result.path).unlink()
    assert read_export_metadata(result.path)["classes"] == ["cat", "dog", "eel"]
    assert OnnxPredictor(result.path).classes == ["cat", "dog", "eel"]


@pytest.mark.parametrize(("fmt", "suffix"), [("torchscript", ".ts"), ("exported-program", ".pt2")])
def test_torch_formats_round_trip(tmp_path, fmt: str, suffix: str) -> None:
    model = tiny_model(resolution=34, padding="same")
    result = export_model(model, tmp_path / f"m{suffix}", fmt, dynamic_batch=True)
    assert result.parity_max_abs_diff <= 1e-4
    loaded = (
        torch.jit.load(str(result.path))
        if fmt == "torchscript"
        else torch.export.load(str(result.path)).module()
    )
    x = torch.randn(4, 3, 34, 34)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-4, rtol=0)
    assert read_export_metadata(result.path)["format"] == fmt


def test_clear_errors(tmp_path) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=13)
    with pytest.raises(ValueError, match=r"\.pt2"):
        export_model(model, tmp_path / "m.pt", "exported-program")
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(model, tmp_path / "m.x", "tflite")
    # a file named for another format is refused before anything is written
    with pytest.raises(ValueError, match=r"\.pt2 is exported-program's.*--out m\.onnx"):
        export_model(model, tmp_path / "m.pt2", "onnx")
    with pytest.raises(ValueError, match=r"\.onnx is onnx's.*--out m\.ts"):
        export_model(model, tmp_path / "m.onnx", "torchscript")
    assert not list(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        model_from_source(str(tmp_path / "missing.safetensors"))
    with pytest.raises(FileNotFoundError, match="effnet export"):
        OnnxPredictor(tmp_path / "nothing.onnx")


def test_export_a_checkpoint(tmp_path) -> None:
    weights = pytest.importorskip("effnet.weights")
    model = tiny_model(num_classes=2, resolution=40)
    model.class_names = ["ok", "bad"]
    ckpt = weights.save_model(model, tmp_path / "ft.safetensors")
    loaded, meta = model_from_source(str(ckpt))
    assert meta["source"] == str(ckpt)
    result = export_onnx(loaded, tmp_path / "ft.onnx")
    assert read_export_metadata(result.path)["classes"] == ["ok", "bad"]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="effnet")
    perf.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_export_prints_parity(tmp_path, capsys) -> None:
    weights = pytest.importorskip("effnet.weights")
    ckpt = weights.save_model(tiny_model(num_classes=2, resolution=40), tmp_path / "ft.safetensors")
    out = tmp_path / "ft.onnx"
    assert _cli(["export", str(ckpt), "--out", str(out), "--resolution", "36"]) == 0
    text = capsys.readouterr().out
    assert "parity vs eager" in text and "padding static" in text
    assert out.is_file() and read_export_metadata(out)["input_shape"] == [1, 3, 36, 36]


def test_cli_int8_reports_and_refuses_with_the_measured_number(tmp_path, capsys) -> None:
    """--int8 end to end from the command line: a checkpoint, a class folder, a refusal."""
    weights = pytest.importorskip("effnet.weights")
    ckpt = weights.save_model(tiny_model(num_classes=2, resolution=32), tmp_path / "ft.safetensors")
    rng = np.random.default_rng(0)
    for label, tone in (("ok", 60), ("bad", 190)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(rng.normal(tone, 40, (36, 36, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / label / f"{i}.png")
    out = tmp_path / "ft.onnx"
    argv = ["export", str(ckpt), "--out", str(out), "--int8", "--calib", str(tmp_path / "data")]
    # no int8 model can lose fewer than -1 points: every recipe is tried, then refused
    assert _cli([*argv, "--max-drop", "-1", "--json"]) == 3
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["parity_max_abs_diff"] <= 1e-4  # the fp32 export itself is kept
    i8 = report["int8"]
    assert not i8["accepted"] and i8["path"] is None and len(i8["tried"]) == 3
    assert i8["eval_images"] >= 2 and i8["calibration_images"] >= 10
    assert f"it loses {i8['drop_points']:.2f} points" in report["int8_refused"]
    assert out.is_file() and not (tmp_path / "ft.int8.onnx").exists()

    # data with another number of classes than the model is refused before any export
    (tmp_path / "data" / "third").mkdir()
    for i in range(10):
        Image.fromarray(np.full((36, 36, 3), i, np.uint8)).save(
            tmp_path / "data" / "third" / f"{i}.png"
        )
    out.unlink()
    with pytest.raises(ValueError, match="3 classes"):
        _cli(argv)
    assert not out.exists()


def test_cli_refuses_an_out_named_for_another_format(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"--format exported-program"):
        _cli(["export", "efficientnet_b0", "--format", "onnx", "--out", str(tmp_path / "m.pt2")])
    assert not list(tmp_path.iterdir())


def test_cli_int8_needs_data(tmp_path) -> None:
    with pytest.raises(ValueError, match="--calib"):
        _cli(["export", "efficientnet_b0", "--int8", "--out", str(tmp_path / "m.onnx")])


def test_a_checkpoint_temperature_travels_and_onnx_predictor_applies_it(tmp_path) -> None:
    """A fine-tuned checkpoint's calibration temperature is copied into the exported file's
    metadata (sidecar and the graph's own property); OnnxPredictor's probabilities divide the
    logits by it, as effnet predict does with the checkpoint."""
    from effnet.export import export_source
    from effnet.predict import predict_files
    from effnet.weights import save_model

    model = tiny_model(num_classes=3, resolution=40)
    model.class_names = ["a", "b", "c"]
    ckpt = save_model(model, tmp_path / "ft", extra={"temperature": 1.75})
    result = export_source(str(ckpt), tmp_path / "ft.onnx", dynamic_batch=True)
    assert result.extra["temperature"] == 1.75
    assert any("temperature 1.750" in line for line in result.describe())
    metadata_path(result.path).unlink()  # the property embedded in the graph carries it too
    predictor = OnnxPredictor(result.path)
    assert predictor.temperature == 1.75
    batch = torch.randn(2, 3, 40, 40)
    expected = (torch.from_numpy(predictor.logits(batch)) / 1.75).softmax(-1).numpy()
    np.testing.assert_allclose(predictor.probs(batch), expected, atol=1e-6)
    Image.fromarray(np.full((50, 50, 3), 120, np.uint8)).save(tmp_path / "x.png")
    onnx_run = predictor.predict_files([tmp_path / "x.png"], topk=3)
    eager = predict_files(model, [tmp_path / "x.png"], topk=3, progress=False, temperature=1.75)
    assert onnx_run.temperature == 1.75
    assert onnx_run.predictions[0].probs == pytest.approx(eager.predictions[0].probs, abs=1e-4)
    # a model without calibration exports none, and the predictor applies T = 1
    plain = export_onnx(model, tmp_path / "plain.onnx")
    assert "temperature" not in read_export_metadata(plain.path)
    assert OnnxPredictor(plain.path).temperature == 1.0
