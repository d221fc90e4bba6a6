"""``effnet push``: a run as a Hub repository in timm's format, which loads back through
``effnet.create_model("hf-hub:ORG/NAME", pretrained=True)`` from the shared Hugging Face cache;
the upload itself is mocked (no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

import effnet
from effnet.cli import main
from helpers.report import make_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("push"))


def put_in_hf_cache(cache: Path, repo: str, folder: Path) -> None:
    """The layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/REV/FILE}."""
    root = cache / ("models--" + repo.replace("/", "--"))
    revision = "1" * 40
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(revision)
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())


def test_the_folder_loads_back_from_the_hub_cache(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    folder = tmp_path / "hub"
    argv = ["push", str(run), "--repo", "me/blobs", "--dry-run", "--local-dir", str(folder)]
    assert main(argv) == 0
    assert "not uploaded" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "model.safetensors"
    ]  # fmt: skip
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "tf_efficientnet_lite0" and config["num_classes"] == 2
    assert config["label_names"] == ["blob", "empty"]
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 64, 64] and cfg["interpolation"] == "bicubic"
    assert {"crop_pct", "mean", "std"} <= set(cfg)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("EFFNET_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    put_in_hf_cache(tmp_path / "hf", "me/blobs", folder)
    hub = effnet.create_model("hf-hub:me/blobs", pretrained=True).eval()
    local = effnet.load_model(run / "best.safetensors").eval()
    assert hub.class_names == ["blob", "empty"] and hub.preprocess == local.preprocess
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(hub(x), local(x), atol=0, rtol=0)


def test_the_model_card_says_data_recipe_metrics_and_how_to_load(run: Path, tmp_path: Path) -> None:
    from effnet.report.hub import write_hub_folder

    card = (write_hub_folder(run, "me/blobs", tmp_path) / "README.md").read_text()
    report = json.loads((run / "report.json").read_text())["test"]
    assert card.startswith("---\nlibrary_name: effnet\n")
    for text in ("## Data", "| train |", "## Recipe", "| `lr` |", "## Metrics",
                 f"balanced accuracy **{100 * report['balanced_accuracy']:.2f}%**",
                 "| blob |", "## Preprocessing", "center crop 64 px",
                 'effnet.create_model("hf-hub:me/blobs", pretrained=True)'):  # fmt: skip
        assert text in card, text


class FakeApi:
    calls: ClassVar[list[tuple[str, Any]]] = []

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        FakeApi.calls.append(("create_repo", (repo_id, kwargs)))

    def upload_folder(self, **kwargs: Any) -> str:
        folder = Path(kwargs["folder_path"])
        FakeApi.calls.append(("upload_folder", sorted(p.name for p in folder.iterdir())))
        return f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"


def test_push_uploads_the_three_files(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    FakeApi.calls = []
    assert main(["push", str(run), "--repo", "me/blobs", "--private"]) == 0
    assert FakeApi.calls == [
        ("create_repo", ("me/blobs", {"private": True, "exist_ok": True})),
        ("upload_folder", ["README.md", "config.json", "model.safetensors"]),
    ]
    assert "https://huggingface.co/me/blobs/commit/abc" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repo", "no-slash"], "ORG/NAME"),
        (["--repo", "me/x", "--dry-run"], "--local-dir"),
    ],
)
def test_mistakes_are_one_line(
    run: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in one_line_error(["push", str(run), *argv], capsys)


def test_a_folder_without_weights_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_error(["push", str(tmp_path), "--repo", "me/x"], capsys)
    assert "best.safetensors" in line


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``effnet ARGV``: it fails with exit code 2 and one line on stderr, returned."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()
