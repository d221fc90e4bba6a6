"""int8: calibration on a tiny set, accuracy measured on a held-out split, refusal over budget."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from effnet.export import (
    RECIPES,
    Int8AccuracyError,
    export_onnx,
    quantize_int8,
)
from effnet.export.artifact import metadata_path
from effnet.export.quantize import sensitive_nodes
from effnet.predict import OnnxPredictor
from helpers.export import tiny_model
from helpers.torch_threads import one_torch_thread as one_torch_thread  # autouse


def _labelled(model: torch.nn.Module, n: int, batch: int, seed: int) -> list:
    """Random images labelled by the fp32 model itself: fp32 top-1 is 100% by construction, so
    int8 top-1 is exactly its agreement with fp32 and the drop is a real measurement."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n // batch):
        x = torch.randn(batch, 3, 32, 32, generator=gen)
        with torch.inference_mode():
            out.append((x, model(x).argmax(-1)))
    return out


def test_int8_pipeline_reports_its_accuracy_delta(tmp_path) -> None:
    model = tiny_model(num_classes=4)
    calib = _labelled(model, 32, 8, seed=1)  # a tiny calibration set
    held_out = _labelled(model, 48, 16, seed=2)
    out = tmp_path / "tiny.int8.onnx"
    report = quantize_int8(model, calib, held_out, out=out, max_drop=None)

    assert report.accepted and report.path == str(out) and out.is_file()
    assert report.fp32_top1 == pytest.approx(100.0, abs=1e-6)
    assert report.drop_points == pytest.approx(100.0 - report.int8_top1)
    assert report.agreement == pytest.approx(report.int8_top1 / 100.0)
    assert report.calibration_images == 32 and report.eval_images == 48
    assert report.recipe == RECIPES[0].name
    assert "drop" in report.summary()

    # the int8 graph really is quantized, keeps the stem fp32, and carries the report
    graph = onnx.load(str(out))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = json.loads(metadata_path(out).read_text())
    assert meta["int8"]["drop_points"] == pytest.approx(report.drop_points)
    assert meta["preprocess"]["input_size"] == 32
    # and it serves through the same runtime API as the fp32 file
    x = held_out[0][0].numpy()
    assert OnnxPredictor(out).logits(x).shape == (16, 4)


def test_int8_refuses_with_the_measured_number(tmp_path) -> None:
    model = tiny_model(num_classes=4)
    fp32 = export_onnx(model, tmp_path / "tiny.onnx").path
    data = _labelled(model, 16, 8, seed=3)
    out = tmp_path / "refused.int8.onnx"
    # a negative budget can never be met: every recipe is tried, then the run is refused
    with pytest.raises(Int8AccuracyError, match=r"refusing int8: it loses .* points") as err:
        quantize_int8(fp32, data, data, out=out, max_drop=-1.0)
    report = err.value.report
    assert not report.accepted and report.path is None and not out.exists()
    assert [t["recipe"] for t in report.tried] == [r.name for r in RECIPES]
    assert all(np.isfinite(t["drop_points"]) for t in report.tried)


def test_int8_input_errors(tmp_path) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="calibration loader yielded no images"):
        quantize_int8(model, [], _labelled(model, 8, 8, 0), out=tmp_path / "a.onnx")
    unlabelled = [(torch.randn(8, 3, 32, 32), None)]
    with pytest.raises(ValueError, match="labelled"):
        quantize_int8(model, unlabelled, unlabelled, out=tmp_path / "b.onnx")
    with pytest.raises(ValueError, match="runtime"):
        quantize_int8(model, unlabelled, unlabelled, runtime="tensorrt")


def test_sensitive_nodes_are_found(tmp_path) -> None:
    model = tiny_model()
    path = export_onnx(model, tmp_path / "t.onnx").path
    graph = onnx.load(str(path))
    for i, node in enumerate(graph.graph.node):
        node.name = node.name or f"n{i}"
    groups = sensitive_nodes(graph)
    assert len(groups["stem"]) == 1 and len(groups["head"]) == 1
    assert len(groups["se"]) == 2 * 3  # three MBConv blocks with squeeze-excite, 2 convs each
