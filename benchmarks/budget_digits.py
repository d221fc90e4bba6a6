"""``effnet finetune --data DIR --time-budget 5m`` and nothing else, against a plain hand-written
training loop given the same five minutes, on data effnet was never tuned on: the 1,797 8x8
handwritten digits that ship with scikit-learn, written as an image folder.

    python benchmarks/budget_digits.py                  # 5 minutes each, seed 0
    python benchmarks/budget_digits.py --budget 3m --seeds 0,1,2

Both run in a fresh process, timed from its start to its exit (start-up, reading the data and
the final evaluation included). The plain loop is what a practitioner writes in 40 lines: the same
ImageNet Lite0 weights, every picture resized to 64 px with the weights' normalisation, AdamW at
lr 1e-3 (the rate that worked best for the loop in the issue), batch 32, no augmentation, as many
epochs as the budget allows (it stops when the next epoch would not fit), then the test split.
It trains on effnet's training split and is scored on effnet's test split (read from the
run's data.json), so both see the same images.

Prints JSON per seed: test accuracy of each, effnet's wall time against the budget, and what
effnet planned.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def write_digits(folder: Path) -> Path:
    """scikit-learn's digits (0..16 gray levels) as 8-bit PNGs in ``folder/<digit>/``."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    if (folder / "9").is_dir():
        return folder
    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        out = folder / str(label)
        out.mkdir(parents=True, exist_ok=True)
        image = np.rint(pixels * 255.0 / 16.0).astype(np.uint8)
        Image.fromarray(image, mode="L").save(out / f"{i:04d}.png")
    return folder


def plain_loop(run_dir: str, budget: float, seed: int) -> dict[str, Any]:
    """The hand-written loop, in this process: started counts from the process's start."""
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torchvision import transforms

    import effnet
    from effnet.data import recorded_splits

    started = time.perf_counter()
    torch.manual_seed(seed)
    splits = recorded_splits(Path(run_dir))  # effnet's split, file for file
    assert splits is not None and splits.test is not None

    model = effnet.create_model("tf_efficientnet_lite0", pretrained=True, num_classes=10)
    pre = model.preprocess
    steps = [transforms.Resize((64, 64)), transforms.Grayscale(3), transforms.ToTensor()]
    tf = transforms.Compose([*steps, transforms.Normalize(pre.mean, pre.std)])

    def tensors(part: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([tf(Image.open(p)) for p, _ in part.samples])
        return x, torch.tensor([y for _, y in part.samples])

    (x_train, y_train), (x_test, y_test) = tensors(splits.train), tensors(splits.test)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    epoch_seconds, epochs = 0.0, 0
    while time.perf_counter() - started + 1.2 * epoch_seconds + 5 < budget:
        start = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(y_train)).split(32):
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch_seconds, epochs = time.perf_counter() - start, epochs + 1
    model.eval()
    with torch.no_grad():
        preds = torch.cat([model(x).argmax(1) for x in x_test.split(64)])
    return {"test_accuracy": float((preds == y_test).float().mean()), "epochs": epochs}


def _timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout


def one_seed(data: Path, out: Path, budget_text: str, budget: float, seed: int) -> dict[str, Any]:
    run = out / f"seed{seed}"
    cmd = [sys.executable, "-m", "effnet", "finetune", "--data", str(data),
           "--time-budget", budget_text, "--out", str(run), "-q"]  # fmt: skip
    if seed:
        cmd += ["--seed", str(seed)]  # another split and initialisation: still no tuning
    wall, _ = _timed(cmd)
    report = json.loads((run / "report.json").read_text())
    plan = json.loads((run / "plan.json").read_text())
    loop_wall, text = _timed([sys.executable, __file__, "--loop", str(run), str(budget), str(seed)])
    loop = json.loads(text.strip().splitlines()[-1])
    row = {
        "seed": seed,
        "effnet_test_accuracy": round(report["test"]["accuracy"], 4),
        "effnet_balanced_accuracy": round(report["test"]["balanced_accuracy"], 4),
        "plain_loop_test_accuracy": round(loop["test_accuracy"], 4),
        "effnet_wall_seconds": round(wall, 1),
        "plain_loop_wall_seconds": round(loop_wall, 1),
        "effnet_wall_vs_budget": round(wall / budget, 3),
        "within_10_percent": abs(wall / budget - 1) <= 0.10,
        "effnet_plan": {k: plan[k] for k in ("model", "image_size", "epochs", "lr", "augment")},
        "effnet_epochs_run": sum(
            json.loads(line)["phase"] == "full"
            for line in (run / "metrics.jsonl").read_text().splitlines()
        ),
        "plain_loop_epochs": loop["epochs"],
        "test_images": report["test"]["num_samples"],
    }
    row["effnet_minus_plain_points"] = round(
        100 * (row["effnet_test_accuracy"] - row["plain_loop_test_accuracy"]), 2
    )
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "digits-images")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / f"bench-digits-{os.getpid()}")
    parser.add_argument("--json-out", help="also write the JSON here")
    parser.add_argument("--loop", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop:
        run_dir, budget, seed = args.loop
        print(json.dumps(plain_loop(run_dir, float(budget), int(seed))))
        return 0
    from effnet.bench import fingerprint
    from effnet.train.plan import parse_duration

    budget = parse_duration(args.budget)
    data = write_digits(args.data)
    rows = [one_seed(data, args.out, args.budget, budget, int(s)) for s in args.seeds.split(",")]
    result = {
        "benchmark": f"--time-budget {args.budget} on scikit-learn's digits, against a plain loop "
        f"given the same time",
        "command": "python benchmarks/budget_digits.py " + " ".join(argv or sys.argv[1:]),
        "runs": rows,
        "effnet_accuracy_median": statistics.median(r["effnet_test_accuracy"] for r in rows),
        "plain_loop_accuracy_median": statistics.median(
            r["plain_loop_test_accuracy"] for r in rows
        ),
        "effnet_wall_vs_budget_median": statistics.median(r["effnet_wall_vs_budget"] for r in rows),
        "environment": fingerprint(),
        "load_average_after": os.getloadavg(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
