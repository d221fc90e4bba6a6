"""Multi-process training with torch.distributed (gloo on CPU), launched by torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from effnet.train.checkpoint import load_run_state
from helpers.images import make_folder

HERE = Path(__file__).parent


def common_args(data: Path, out: Path, batch: int) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        "tf_efficientnet_b0",  # BN eps 1e-3: eps 1e-5 on 1x1 maps amplifies float noise
        "--image-size",
        "32",
        "--epochs",
        "1",  # two optimizer steps: float noise grows chaotically over more steps of a tiny net
        "--batch-size",
        str(batch),
        "--workers",
        "0",
        "--split",
        "75/25",
        "--augment",
        "none",
        "--drop-rate",
        "0",
        "--drop-path-rate",
        "0",
        "--label-smoothing",
        "0",
        "--warmup-epochs",
        "0",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--sync-bn",
        "--no-progress",
        "--no-cache-images",
    ]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return e


def torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env())


def raw_params(run: Path) -> dict[str, torch.Tensor]:
    weights = load_run_state(run).model
    assert weights is not None
    return weights


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("ddp") / "colours", per_class=8, size=32)


@pytest.fixture(scope="module")
def single(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "effnet", *common_args(data, out, 8)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_two_processes_match_one_with_the_same_global_batch(
    data: Path, single: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ddp"
    proc = torchrun(
        "--standalone", "--nproc_per_node=2", "-m", "effnet", *common_args(data, out, 4)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = raw_params(single), raw_params(out)
    assert a.keys() == b.keys()
    moved = 0
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(b[key], a[key], atol=2e-4, rtol=1e-3, msg=key)
            moved += 1
    assert moved > 100
    # rank 0 alone wrote the run; the log came from rank 0 only
    assert (out / "report.json").is_file()
    log = proc.stdout + proc.stderr  # the start line: `effnet train`, from scratch
    assert log.count("effnet train: tf_efficientnet_b0 (random init) on ") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_through_rendezvous(data: Path, single: Path, tmp_path: Path) -> None:
    """Two torchrun agents on 127.0.0.1 form one 2-node job through c10d rendezvous."""
    out = tmp_path / "nodes"
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={rank}",
                "--rdzv_backend=c10d",
                f"--rdzv_endpoint=127.0.0.1:{port}",
                "--rdzv_id=effnet-test",
                "-m",
                "effnet",
                *common_args(data, out, 4),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        for rank in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    a, b = raw_params(single), raw_params(out)
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(b[key], a[key], atol=2e-4, rtol=1e-3, msg=key)


def test_a_failing_rank_ends_the_job(data: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    proc = torchrun(
        "--standalone",
        "--nproc_per_node=2",
        str(HERE / "ddp_fault_script.py"),
        *common_args(data, tmp_path / "fault", 4),
        timeout=180,
    )
    assert proc.returncode != 0
    assert "rank 1 failed on purpose" in proc.stderr
    assert time.monotonic() - start < 180
