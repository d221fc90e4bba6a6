"""Bad inputs and faults for the reliability suite: broken files of every kind, and the checks
that a command failed the way a user can act on (one line, the right exit code, no traceback)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from effnet.cli import main
from effnet.train import FinetuneConfig


class Payload:
    """An object a checkpoint may pickle: loading it would need to run this module's code."""

    def __init__(self) -> None:
        self.note = "not a tensor"


def cli(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``effnet ARGV`` run in this process."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(
    argv: Sequence[str], capsys: pytest.CaptureFixture[str], *, code: int = 2
) -> str:
    """Run ``effnet ARGV``, check it failed with ``code`` and said why in one line (stderr's
    last; progress may come before it), with no traceback, and return that line."""
    got, _, err = cli(argv, capsys)
    lines = err.strip().splitlines()
    assert got == code, err
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith(f"effnet {argv[0]}: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


def truncated_copy(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def random_file(path: Path, size: int = 4096) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def pickled_checkpoint(path: Path) -> Path:
    """A torch file that pickles an object besides its tensors."""
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Payload()}, path)
    return path


def onnx_like(path: Path) -> Path:
    """The first bytes of an ONNX model (protobuf: ir_version, then the producer's name)."""
    path.write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x032.3" + bytes(256))
    return path


def resnet18_state(path: Path) -> Path:
    """A torchvision ResNet-18 state dict: a weights file of another kind of network."""
    from torchvision.models import resnet18

    torch.save(resnet18(weights=None).state_dict(), path)
    return path


def safetensors_with_metadata(path: Path, metadata: object) -> Path:
    """A small safetensors file whose effnet metadata is ``metadata`` (any JSON value)."""
    import json

    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path), metadata={"effnet": json.dumps(metadata)})
    return path


def truncated_jpeg(path: Path, size: int = 40) -> Path:
    """A JPEG cut in the middle of its data: the header reads, the pixels do not."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(len(str(path)))
    buf = io.BytesIO()
    pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_config(data: Path, out: Path, **overrides: Any) -> FinetuneConfig:
    """The cheapest real run: random init (no weight package needed), 32 px, one epoch of each
    phase on a handful of pictures."""
    base: dict[str, Any] = dict(
        data=str(data),
        out=str(out),
        weights="none",
        image_size=32,
        batch_size=3,  # 9 training pictures: 3 full batches (BatchNorm needs 2+ a batch)
        eval_batch_size=32,
        head_epochs=1,
        epochs=1,
        workers=0,
        split="60/20/20",
        progress=False,
        bn_recalibrate=False,
        channels_last=False,
    )
    base.update(overrides)
    return FinetuneConfig(**base)


def copy_run(run: Path, dst: Path) -> Path:
    """A copy of a run directory to change (its lock file too: a plain file)."""
    shutil.copytree(run, dst)
    return dst


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes): to show nothing changed."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".effnet.lock"
    }
