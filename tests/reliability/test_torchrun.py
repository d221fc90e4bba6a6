"""Many processes (issue 12): under torchrun a failing rank's own error is what the user reads,
one line, not the gloo text of the ranks waiting for it; and the start line says what the run
starts from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.faults import cli

HERE = Path(__file__).parent


def _train_args(images: Path, out: Path) -> list[str]:
    return ["train", "--data", str(images), "--out", str(out), "--model", "tf_efficientnet_b0",
            "--image-size", "32", "--epochs", "1", "--batch-size", "4", "--workers", "0",
            "--split", "75/25", "--no-progress", "--no-cache-images"]  # fmt: skip


def test_the_start_line_says_what_the_run_starts_from(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "effnet finetune: ... (none weights)" for `effnet train`."""
    code, out, err = cli(_train_args(images, tmp_path / "run"), capsys)
    assert code == 0, err
    start = next(line for line in (out + err).splitlines() if "; run dir " in line)
    assert start.startswith("effnet train: tf_efficientnet_b0 (random init) on ")
    assert "none weights" not in out + err


@pytest.mark.slow
def test_a_failing_rank_is_the_error_the_user_reads(images: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_user_error.py"), *_train_args(images, tmp_path / "run")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    err = proc.stderr
    assert proc.returncode != 0
    # the failing rank's own line ...
    assert "effnet train: error: rank 1 found a bad picture on purpose" in err
    # ... is torchrun's root cause too (its error file), not "To enable traceback see ..."
    root = err[err.index("Root Cause") :]
    assert "rank 1 found a bad picture on purpose" in root
    # and the rank waiting for it says one line, no gloo text, no traceback of its own
    assert "Connection closed by peer" not in err and "gloo" not in err.lower()
    assert "[rank0]: Traceback" not in err and "[rank1]: Traceback" not in err
