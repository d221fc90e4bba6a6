"""A fine-tuning run as a Hugging Face Hub model repository, in timm's format (``effnet push``).

The folder holds what ``timm`` and ``effnet`` read from a Hub repository:

* ``model.safetensors``: the run's best weights, effnet's own file (its metadata names the
  network, the classes and the preprocessing, so the file alone rebuilds the model);
* ``config.json``: timm's keys, ``architecture`` (the model name), ``num_classes``,
  ``num_features``, ``label_names`` and ``pretrained_cfg`` (``input_size``, ``crop_pct``,
  ``interpolation``, ``mean``, ``std``, ...);
* ``README.md``: the model card, what the run recorded: the data and its split, the recipe,
  the test metrics (balanced accuracy and the per-class table too), the preprocessing, and how
  to load it, ``effnet.create_model("hf-hub:ORG/NAME", pretrained=True)``.

It lives in ``report/`` because a model card is a report of a run: it reads the run directory
as ``effnet report`` does (:func:`~effnet.report.run.read_run`). The upload goes through
``huggingface_hub`` (``create_repo`` + ``upload_folder``), which takes the token from
``HF_TOKEN`` or ``huggingface-cli login``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet.errors import ConfigError, RunDirError
from effnet.files import write_text
from effnet.report.run import RunFiles, read_run

__all__ = ["HUB_FILES", "PushResult", "hub_config", "model_card", "push_run", "write_hub_folder"]

HUB_FILES = ("model.safetensors", "config.json", "README.md")
_RECIPE = ("model", "weights", "image_size", "head_epochs", "head_lr", "epochs", "lr",
           "optimizer", "weight_decay", "schedule", "warmup_epochs", "batch_size", "augment",
           "auto_augment", "random_erase", "mixup", "cutmix", "label_smoothing", "ema",
           "layer_decay", "drop_path_rate", "balance", "progressive", "seed")  # fmt: skip


@dataclass
class PushResult:
    repo: str
    folder: Path
    """Where the files were written (a temporary folder, gone after an upload without
    ``local_dir``)."""
    files: list[str]
    url: str | None = None
    """The commit's URL; None when nothing was uploaded (``dry_run``)."""


def _check_repo(repo: str) -> None:
    org, _, name = repo.partition("/")
    if not org or not name or "/" in name or repo.startswith("hf-hub:"):
        raise ConfigError(f"--repo takes ORG/NAME (e.g. my-team/elpv-lite0), got {repo!r}")


def hub_config(model: Any) -> dict[str, Any]:
    """timm's ``config.json`` for ``model`` (a loaded effnet checkpoint)."""
    cfg = {k: v for k, v in model.pretrained_cfg.items() if v is not None}
    for key in ("architecture", "tag", "url", "hf_hub_id", "source", "origin", "file"):
        cfg.pop(key, None)
    return {
        "architecture": model.spec.name,
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "global_pool": "avg",
        "label_names": list(model.class_names or []),
        "pretrained_cfg": cfg,
    }


_CARD = """---
library_name: effnet
pipeline_tag: image-classification
tags:
- image-classification
- efficientnet
- effnet
---

# {title}

`{architecture}` fine-tuned with [effnet](https://pypi.org/project/effnet/) to tell
{num_classes} classes apart: {classes}.

## Data

{data}

## Recipe

| setting | value |
| --- | --- |
{recipe}

Kept epoch: {best_epoch} (by validation {selected_by}: the best one, or a later one within its
standard error).

## Metrics

{metrics}

## Preprocessing

Resize the short side to {resize} px ({interpolation}), center crop {size} px (crop_pct
{crop_pct:.4f}), scale to [0, 1], normalise with mean {mean} and std {std}.
`effnet.data.eval_transform(model)` builds exactly this; timm's `resolve_model_data_config` +
`create_transform` read the same `pretrained_cfg` from `config.json`.

## How to use

```python
import effnet

model = effnet.create_model("hf-hub:{repo}", pretrained=True).eval()
transform = effnet.data.eval_transform(model)
print(model.class_names)
```

```bash
effnet predict photo.jpg --model hf-hub:{repo}
```

`model.safetensors` is effnet's weight file (its metadata carries the network, the classes and
the preprocessing); `effnet convert model.safetensors timm.pth --to timm` gives timm's state
dict.
"""


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) else "n/a"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = [headers, align, *[[str(v) for v in row] for row in rows]]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _data_section(run: RunFiles, classes: list[str]) -> str:
    report, c = run.summary, run.config
    data = report.get("data") if isinstance(report.get("data"), dict) else {}
    source = Path(str(data.get("source") or c.get("data", "?"))).name
    mode = f", label mode `{c['label_mode']}`" if c.get("label_mode") else ""
    text = (
        f"`{source}` ({data.get('kind', 'images')}{mode}); "
        f"{report.get('num_skipped_images', 0)} unreadable images skipped."
    )
    splits = run.split_record.get("splits", {})
    rows = [
        [name, part.get("count", "?"), *(part.get("class_counts", {}).get(k, 0) for k in classes)]
        for name, part in splits.items()
    ]
    return text + ("\n\n" + _table(["split", "images", *classes], rows) if rows else "")


def _metrics_section(report: dict[str, Any]) -> str:
    test = report.get("test")
    if not isinstance(test, dict):
        return "The run had no test split: no held-out metrics."
    rows = [
        [name, _pct(r.get("precision")), _pct(r.get("recall")), _pct(r.get("f1")), r.get("support")]
        for name, r in test.get("per_class", {}).items()
    ]
    return (
        f"On the held-out test split ({test.get('num_samples', '?')} images): accuracy "
        f"**{_pct(test.get('accuracy'))}**, balanced accuracy "
        f"**{_pct(test.get('balanced_accuracy'))}**, macro-F1 {_pct(test.get('macro_f1'))}.\n\n"
        + _table(["class", "precision", "recall", "F1", "support"], rows)
    )


def model_card(run: RunFiles, repo: str, config: dict[str, Any], resize: int) -> str:
    """The README.md of the repository: the run's data, recipe, metrics and preprocessing
    (``resize``: the short side before the center crop)."""
    pre, classes = config["pretrained_cfg"], config["label_names"]
    recipe = [
        f"| `{k}` | `{run.config[k]}` |" for k in _RECIPE if run.config.get(k) not in (None, "", 0)
    ]
    size = pre["input_size"][-1]
    return _CARD.format(
        title=repo.split("/", 1)[1],
        repo=repo,
        architecture=config["architecture"],
        num_classes=len(classes),
        classes=", ".join(f"`{n}`" for n in classes),
        data=_data_section(run, classes),
        recipe="\n".join(recipe),
        best_epoch=run.summary.get("best_epoch", "n/a"),
        selected_by=str(run.summary.get("selected_by", "accuracy")).replace("_", " "),
        metrics=_metrics_section(run.summary),
        resize=resize,
        interpolation=pre["interpolation"],
        size=size,
        crop_pct=pre["crop_pct"],
        mean=list(pre["mean"]),
        std=list(pre["std"]),
    )


def write_hub_folder(
    run_dir: str | os.PathLike[str], repo: str, out: str | os.PathLike[str]
) -> Path:
    """Write the repository's files (:data:`HUB_FILES`) for the run in ``run_dir`` into
    ``out``; returns ``out``."""
    from effnet.weights.native import load_checkpoint

    _check_repo(repo)
    run = read_run(run_dir)
    if run.checkpoint is None:
        raise RunDirError(
            f"{run_dir} holds no best.safetensors or last.safetensors: push a finished "
            "effnet finetune / train run directory"
        )
    model, _ = load_checkpoint(run.checkpoint)
    config = hub_config(model)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.checkpoint, folder / "model.safetensors")
    write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")
    write_text(folder / "README.md", model_card(run, repo, config, model.preprocess.resize_size))
    return folder


def push_run(
    run_dir: str | os.PathLike[str],
    repo: str,
    *,
    local_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    private: bool = False,
) -> PushResult:
    """Write the run's repository folder (into ``local_dir``, else a temporary folder) and,
    unless ``dry_run``, upload it to the Hub repository ``repo`` (created if missing)."""
    _check_repo(repo)
    if dry_run and local_dir is None:
        raise ConfigError("--dry-run writes the folder without uploading: give --local-dir DIR")
    with tempfile.TemporaryDirectory(prefix="effnet-push-") as tmp:
        folder = write_hub_folder(run_dir, repo, local_dir or tmp)
        files = sorted(p.name for p in folder.iterdir() if p.name in HUB_FILES)
        if dry_run:
            return PushResult(repo, folder, files)
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise ConfigError(
                "effnet push needs huggingface_hub: pip install 'effnet[hub]'"
            ) from None
        api = HfApi()
        api.create_repo(repo, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo,
            folder_path=str(folder),
            allow_patterns=list(HUB_FILES),
            commit_message=f"effnet push {Path(run_dir).name}",
        )
        return PushResult(repo, folder, files, str(getattr(commit, "commit_url", commit)))
