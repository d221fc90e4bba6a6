"""Runs never destroy results (issue 12): a run directory is created fresh or resumed, never
overwritten; one process at a time holds it; the user's config file is never rewritten; the
metrics always match the checkpoint; a full disk is one line and leaves a resumable run."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

import effnet.train.checkpoint as checkpoint
from effnet.errors import ConfigError, DiskFullError, RunDirError
from effnet.train import finetune, resume
from effnet.train.checkpoint import (
    LOCK_FILE,
    STATE_FILE,
    RunState,
    claim_run_dir,
    load_run_state,
)
from helpers.faults import copy_run, one_line_error, run_config, tree

needs_flock = pytest.mark.skipif(sys.platform == "win32", reason="runs are locked with flock")


def _metrics(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _cli_run(images: Path, out: Path) -> list[str]:
    return ["finetune", "--data", str(images), "--out", str(out), "--weights", "none",
            "--image-size", "32", "--head-epochs", "1", "--epochs", "1", "--workers", "0",
            "--split", "60/20/20", "--no-progress", "--no-bn-recalibrate"]  # fmt: skip


# -- never overwritten ---------------------------------------------------------------------------


def test_a_finished_run_without_its_state_is_not_overwritten(
    finished_run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out at a finished run whose last.train.pt was deleted overwrote best/last weights,
    report, metrics and plots, exit 0."""
    run = copy_run(finished_run, tmp_path / "run")
    (run / STATE_FILE).unlink()
    before = tree(run)
    line = one_line_error(_cli_run(images, run), capsys)
    assert "already holds the results of a run" in line and "--overwrite" in line
    assert tree(run) == before


def test_a_run_that_can_be_resumed_says_so(
    finished_run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    before = tree(run)
    line = one_line_error(_cli_run(images, run), capsys)
    assert f"--resume {run}" in line and "--overwrite" in line
    assert tree(run) == before


def test_overwrite_deletes_the_runs_files_and_only_those(
    finished_run: Path, tmp_path: Path
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    (run / "exp.yaml").write_text("lr: 0.1  # my settings\n")
    (run / "plots").mkdir()
    with claim_run_dir(run, resume=False, overwrite=True) as state:
        assert state == RunState()
        left = sorted(p.name for p in run.iterdir())
    assert left == [LOCK_FILE, "exp.yaml", "notes.txt", "plots"]
    assert (run / "exp.yaml").read_text() == "lr: 0.1  # my settings\n"


def test_a_run_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("x")
    with (
        pytest.raises(RunDirError, match="is a file"),
        claim_run_dir(tmp_path / "run", resume=False),
    ):
        pass


def test_a_run_that_fails_before_writing_leaves_no_folder(images: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="expected a data source"):
        finetune(run_config(tmp_path / "no-such-data", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_run_directory_inside_the_data_folder(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its plots would be pictures of a class "run" the next time the folder is scanned."""
    data = copy_run(images, tmp_path / "data")
    line = one_line_error(_cli_run(data, data / "run"), capsys)
    assert "inside the data folder" in line
    assert sorted(p.name for p in data.iterdir()) == ["blue", "green", "red"]


def test_evaluate_never_writes_over_a_runs_report(
    finished_run: Path,
    checkpoint: Path,
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    before = tree(run)
    argv = ["evaluate", str(checkpoint), "--data", str(images), "--out", str(run)]
    assert "is a run directory" in one_line_error(argv, capsys)
    assert tree(run) == before


# -- the user's config file ----------------------------------------------------------------------


def test_the_users_config_file_is_never_rewritten(
    images: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--config exp1/config.yaml --out exp1 replaced the user's commented config."""
    exp = tmp_path / "exp1"
    exp.mkdir()
    text = "# my experiment\nlr: 0.0003  # tuned by hand\nepochs: 1\nhead_epochs: 1\n"
    (exp / "config.yaml").write_text(text)
    argv = ["finetune", "--config", str(exp / "config.yaml"), "--data", str(images)]
    line = one_line_error([*argv, "--out", str(exp)], capsys)
    assert "never rewrites your config file" in line
    line = one_line_error([*argv, "--out", str(exp), "--overwrite"], capsys)
    assert "never rewrites your config file" in line
    assert (exp / "config.yaml").read_text() == text
    # under another name in the run directory it is fine, and stays as it was
    (exp / "config.yaml").rename(exp / "exp1.yaml")
    import effnet.train.finetuning as finetuning

    def load_source(*args: object, **kwargs: object) -> None:
        raise ConfigError("stop here: the checks passed")

    monkeypatch.setattr(finetuning, "load_source", load_source)
    argv = ["finetune", "--config", str(exp / "exp1.yaml"), "--data", str(images)]
    assert "stop here" in one_line_error([*argv, "--out", str(exp)], capsys)
    assert (exp / "exp1.yaml").read_text() == text


# -- one process at a time -----------------------------------------------------------------------

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from effnet.train.checkpoint import claim_run_dir
    with claim_run_dir(Path(sys.argv[1]), resume=False):
        print("holding", flush=True)
        time.sleep(120)
    """
)


@needs_flock
def test_a_second_process_is_refused_and_a_killed_one_leaves_no_lock(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        line = one_line_error(_cli_run(images, run), capsys)
        assert "in use by another effnet run" in line and f"pid {holder.pid}" in line
        with pytest.raises(RunDirError, match="in use"), claim_run_dir(run, resume=True):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: no clean-up code runs
        holder.wait()
    with claim_run_dir(run, resume=False):  # the OS released the lock with the process
        pass


@pytest.mark.slow
@needs_flock
def test_two_runs_started_a_second_apart_into_one_folder(images: Path, tmp_path: Path) -> None:
    """Both exited 0 before, the second overwriting the first. The second starts as soon as the
    first has said it started (and so holds the run), long before the first ends."""
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "effnet", *_cli_run(images, run), "--epochs", "30"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    # the second, its imports done, waits for a line on stdin to start
    waits = (
        "import sys; from effnet.cli import main; sys.stdin.readline(); "
        "sys.exit(main(sys.argv[1:]))"
    )
    second = subprocess.Popen(
        [sys.executable, "-c", waits, *argv[3:]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert first.stdout is not None
    said = [first.stdout.readline()]
    while said[-1] and "; run dir " not in said[-1]:  # the start line: the run holds its folder
        said.append(first.stdout.readline())
    assert said[-1], said
    _, second_err = second.communicate("go\n", timeout=300)
    rest, _ = first.communicate(timeout=600)
    assert first.returncode == 0, "".join(said) + rest[-2000:]
    assert second.returncode == 2, second_err[-2000:]
    assert "in use by another effnet run" in second_err and f"pid {first.pid}" in second_err
    assert "Traceback" not in second_err
    assert len(_metrics(run)) == 31  # the first run's, whole


# -- metrics and checkpoint committed together ---------------------------------------------------


def _state_with(history: int) -> RunState:
    rows = [{"phase": "full", "epoch": i + 1, "train_loss": 1.0 / (i + 1)} for i in range(history)]
    return RunState(phase="full", epoch=history, history=rows)


@pytest.mark.parametrize("on_disk", [1, 3], ids=["metrics behind", "metrics ahead"])
def test_resume_trusts_the_state_and_rewrites_the_metrics(tmp_path: Path, on_disk: int) -> None:
    run = tmp_path / "run"
    run.mkdir()
    torch.save(checkpoint._as_file(_state_with(2)), run / STATE_FILE)
    rows = [{"phase": "full", "epoch": i + 1} for i in range(on_disk)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / ".last.safetensors.abc123.tmp").write_bytes(b"half a file")  # a kill mid-write
    with claim_run_dir(run, resume=True) as state:
        assert state.epoch == 2
        assert _metrics(run) == state.history
    assert not (run / ".last.safetensors.abc123.tmp").exists()


FAULT_POINTS = ["last.safetensors", "best.safetensors", STATE_FILE, "metrics.jsonl"]


def _fail_writing(
    monkeypatch: pytest.MonkeyPatch, name: str, nth: int, error: BaseException
) -> None:
    """Make the ``nth`` write of run file ``name`` fail half-way with ``error`` (a kill, a full
    disk): the real atomic write runs, with bytes written before the error."""
    import effnet.files as files

    real = files.atomic_write
    seen = {"n": 0}

    def atomic_write(path: str | os.PathLike[str], write: Any) -> Path:
        if Path(path).name == name:
            seen["n"] += 1
            if seen["n"] == nth:

                def half(tmp: Path) -> None:
                    tmp.write_bytes(b"half a file")
                    raise error

                return real(path, half)
        return real(path, write)

    for module in ("effnet.files", "effnet.train.checkpoint", "effnet.weights.io"):
        monkeypatch.setattr(f"{module}.atomic_write", atomic_write)


@pytest.mark.parametrize("name", FAULT_POINTS)
def test_a_crash_at_any_write_leaves_metrics_that_match_the_checkpoint(
    name: str, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while phase 2's checkpoint is written (the 2nd write of each file; best is
    written when validation improves, so its 2nd write may not come: then the run finishes)."""
    run = tmp_path / "run"
    _fail_writing(monkeypatch, name, 2, KeyboardInterrupt())
    with contextlib.suppress(KeyboardInterrupt):  # when that write comes
        finetune(run_config(images, run))
    monkeypatch.undo()
    state = load_run_state(run)
    assert state.epoch >= 1
    # the metrics never list an epoch the checkpoint lacks (they may lack its last one) ...
    assert state.history[: len(_metrics(run))] == _metrics(run)
    with claim_run_dir(run, resume=True):
        assert _metrics(run) == state.history  # ... and a resume rewrites them from it


@pytest.mark.slow
@pytest.mark.parametrize("name", FAULT_POINTS)
def test_resume_after_a_crash_at_any_write_equals_an_uninterrupted_run(
    name: str, images: Path, finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    _fail_writing(monkeypatch, name, 2, KeyboardInterrupt())
    with contextlib.suppress(KeyboardInterrupt):  # when that write comes
        finetune(run_config(images, run))
    monkeypatch.undo()
    result = resume(run)
    whole = load_run_state(finished_run)
    again = load_run_state(run)
    assert again.history and len(again.history) == len(whole.history)
    for a, b in zip(whole.history, again.history):
        assert a["train_loss"] == b["train_loss"] and a.get("val_acc") == b.get("val_acc")
    assert whole.model is not None and again.model is not None
    for key, value in whole.model.items():
        assert torch.equal(value, again.model[key]), key
    assert _metrics(run) == again.history
    assert (
        result.report["test"]["accuracy"]
        == json.loads((finished_run / "report.json").read_text())["test"]["accuracy"]
    )


# -- a run that diverges ------------------------------------------------------------------------


def test_a_run_that_diverges_stops_keeping_its_last_good_epoch(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--lr inf trained to NaN and exited 0 with checkpoints and a report; a finite rate that
    is far too high does the same, so the loss is checked after every epoch."""
    run = tmp_path / "run"
    argv = [*_cli_run(images, run), "--head-epochs", "3", "--head-lr", "1e30"]
    line = one_line_error(argv, capsys)
    assert "training diverged in head epoch" in line and "Lower --head-lr" in line
    state = load_run_state(run)
    assert state.history and all(math.isfinite(r["train_loss"]) for r in state.history)
    assert _metrics(run) == state.history
    assert not (run / "report.json").exists()


# -- a full disk ---------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_leaves_a_resumable_run(
    images: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A traceback before, and metrics.jsonl recorded an epoch that had no checkpoint."""
    run = tmp_path / "run"
    _fail_writing(monkeypatch, STATE_FILE, 2, OSError(errno.ENOSPC, "No space left on device"))
    line = one_line_error(_cli_run(images, run), capsys, code=1)
    monkeypatch.undo()
    assert "no space left on the disk while writing" in line
    assert str(run / STATE_FILE) in line and " free in " in line and f"--resume {run}" in line
    state = load_run_state(run)
    assert state.epoch == 1 and state.phase == "head"  # the epoch before the full disk
    assert len(_metrics(run)) == len(state.history) == 1


def test_a_full_disk_in_any_write_is_a_disk_full_error(tmp_path: Path) -> None:
    from effnet.files import atomic_write, write_text

    write_text(tmp_path / "a.txt", "old")

    def fill(tmp: Path) -> None:
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=r"a\.txt") as caught:
        atomic_write(tmp_path / "a.txt", fill)
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no partial file left


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="a small tmpfs in a user namespace")
def test_a_really_full_disk(images: Path, tmp_path: Path) -> None:
    """A 20 MB tmpfs: the first checkpoint (~40 MB) cannot be written."""
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no user namespaces here")
    mount = tmp_path / "small"
    mount.mkdir()
    run = mount / "run"
    check = (
        "from pathlib import Path; from effnet.train.checkpoint import claim_run_dir; "
        f"p = Path('{run}'); print('state', (p / '{STATE_FILE}').exists(), "
        "'tmp', sorted(x.name for x in p.glob('.*.tmp')))"
    )
    args = " ".join(f"'{a}'" for a in _cli_run(images, run))
    script = (
        f"mount -t tmpfs -o size=20m tmpfs {mount} && "
        f'{sys.executable} -m effnet {args}; echo exit=$?; {sys.executable} -c "{check}"'
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300
    )
    assert "exit=1" in proc.stdout, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no space left on the disk while writing" in errors[0]
    assert "Traceback" not in proc.stderr
    assert "state False tmp []" in proc.stdout  # nothing half-written left behind
