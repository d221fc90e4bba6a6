from __future__ import annotations

import json
import subprocess
import sys

import pytest

from effnet.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_scale_table_and_formula(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scale", "--phi", "0..7")
    assert code == 0
    assert "efficientnet_b7" in out and "efficientnet_phi7" in out
    lines = [ln for ln in out.splitlines() if ln.lstrip().startswith("0 ")]
    assert len(lines) == 2  # phi 0 in both tables
    assert "5,288,548" in lines[0] and "0.390" in lines[0]


def test_scale_json_custom_coefficients(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scale", "--phi", "0,1,2.5", "--alpha", "1.3", "--json")
    data = json.loads(out)
    assert code == 0 and "table" not in data
    assert [r["phi"] for r in data["formula"]] == [0, 1, 2.5]
    assert data["formula"][1]["depth"] == pytest.approx(1.3)


def test_info_b0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "efficientnet_b0")
    assert code == 0
    assert "5,288,548 parameters" in out and "0.390 GMACs" in out
    assert "stage6  MBConv+SE0.25  5       2       6       192        4" in out
    code, out, _ = run(capsys, "info", "efficientnetv2_s", "--json")
    assert json.loads(out)["params"] == 21_458_488


def test_bad_input_names_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "info", "efficientnet_b9")
    assert code == 2 and "efficientnet_b9" in err and "list_models" in err
    code, _, err = run(capsys, "scale", "--phi", "seven")
    assert code == 2 and "'0..7'" in err


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "effnet", "list", "efficientnet_lite*", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == [f"efficientnet_lite{i}" for i in range(5)]
    assert rows[0]["params"] == 4_652_008


def test_user_errors_are_one_line_with_their_exit_code_and_bugs_keep_their_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from effnet.cli import train as train_cli
    from effnet.errors import EffnetError

    # a user error (an EffnetError): one line on stderr, the error's exit code
    code, _, err = run(capsys, "finetune", "--resume", str(tmp_path / "nothing-here"))
    assert code == 2 and err.count("\n") == 1 and "config.yaml" in err
    # the file system (OSError): one line, exit code 1
    code, _, err = run(capsys, "export", str(tmp_path / "missing.safetensors"))
    assert code == 1 and err.startswith("effnet export: error: no checkpoint at")

    # anything else is a bug: it is not swallowed into a one-line message
    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug")

    monkeypatch.setattr(train_cli, "evaluate_checkpoint", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["evaluate", "ckpt", "--data", "x"])
    assert issubclass(EffnetError, Exception) and not issubclass(TypeError, EffnetError)
