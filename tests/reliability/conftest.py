"""What the reliability tests share: a tiny labelled folder, a 3-class checkpoint made without
training, and one real (tiny) finished run that the run-directory tests copy."""

from __future__ import annotations

from pathlib import Path

import pytest

import effnet
from effnet.train import finetune
from effnet.train.run import with_size
from effnet.weights import save_model
from helpers.faults import run_config
from helpers.images import make_folder


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """red/green/blue, 5 pictures each, 32 px."""
    return make_folder(tmp_path_factory.mktemp("images") / "colours", per_class=5, size=32)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An effnet file of a 3-class (blue, green, red) Lite0 at 32 px, untrained."""
    model = effnet.create_model("tf_efficientnet_lite0", num_classes=3)
    model.class_names = ["blue", "green", "red"]
    with_size(model, 32)
    return save_model(model, tmp_path_factory.mktemp("ckpt") / "three.safetensors")


@pytest.fixture(scope="session")
def finished_run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run (never changed: tests copy it with ``helpers.faults.copy_run``)."""
    out = tmp_path_factory.mktemp("runs") / "finished"
    finetune(run_config(images, out))
    return out
