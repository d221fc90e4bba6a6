"""The inference passes of a fine-tuning run against the fused model's own inference, on the same
images in the same process: BatchNorm recalibration, phase 1's feature caching, and the data
pipeline before and after pictures are prepared once.

    python benchmarks/passes.py                 # ELPV train split (1,968 cells), Lite0, 224 px
    python benchmarks/passes.py --size 128 --rounds 3

Every pass reads the run's training images through the loader a run uses. ``fused`` is the
inference copy every evaluation of a run runs on (BatchNorm folded), timed over the same
loader: the reference the other passes are measured against. ``recalibrate`` is
``effnet.train.phases.recalibrate_bn`` as a run calls it (on its seeded sample of
``bn_recalibrate_images`` images; its per-image rate is reported too), ``features`` phase 1's
feature pass. ``loader_per_image`` is the pipeline as it ran before pictures were prepared once
(torchvision transforms image by image in the main process, what ``workers: 0`` gave).
Prints JSON: seconds and images/s of each pass, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="elpv")
    parser.add_argument("--label-mode", default="4class")
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)

    from effnet.bench import fingerprint
    from effnet.data import train_transform
    from effnet.host import fast_malloc, torch_threads
    from effnet.train import FinetuneConfig
    from effnet.train.checkpoint import RunState
    from effnet.train.distributed import init_distributed
    from effnet.train.finetuning import _prepare_run
    from effnet.train.loaders import make_loader
    from effnet.train.loop import extract_features
    from effnet.train.phases import _head_features, recalibrate_bn
    from effnet.train.run import inference_copy

    config = FinetuneConfig(
        data=args.data, label_mode=args.label_mode if args.data == "elpv" else None,
        split="75/25", model=args.model, image_size=args.size, crop_pct=1.0, epochs=1,
        lr=1e-3, augment="none", balance="none", select_by="accuracy", amp="none",
        progress=False, out=f"runs/bench-passes-{os.getpid()}",
    )  # fmt: skip
    started = time.perf_counter()
    with torch_threads(args.threads), fast_malloc():
        run, _ = _prepare_run(config, init_distributed("cpu"), RunState(), None, started,
                              plan=False)  # fmt: skip
        n = len(run.data.train)
        transform = train_transform(run.model.preprocess, "none")

        def loader(images: Any) -> Any:
            return make_loader(run.data.train, transform, run.ctx, batch_size=64, workers=0,
                               images=images)  # fmt: skip

        prepared = loader(run.images)
        for _ in prepared:  # prepares the pictures once, as the run's first pass does
            break

        def fused() -> None:
            extract_features(inference_copy(run.model, True), prepared, run.ctx,
                             channels_last=True)  # fmt: skip

        def timed(fn: Any) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        rounds: list[dict[str, float]] = []
        for i in range(args.rounds):
            r = {
                "fused": timed(fused),
                "recalibrate": timed(lambda: recalibrate_bn(run)),
                "features": timed(lambda: _head_features(run, run.data.train, "train")),
                "loader_per_image": timed(lambda: [None for _ in loader(None)]),
                "loader_prepared": timed(lambda: [None for _ in prepared]),
            }
            rounds.append(r)
            print(f"round {i + 1}: {json.dumps({k: round(v, 1) for k, v in r.items()})}",
                  file=sys.stderr)  # fmt: skip
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    sample = min(config.bn_recalibrate_images, n)
    per_image = {
        "fused": n / med["fused"],
        "recalibrate": sample / med["recalibrate"],
        "features": n / med["features"],
        "loader_per_image": n / med["loader_per_image"],
        "loader_prepared": n / med["loader_prepared"],
    }
    result = {
        "benchmark": f"inference passes of a run: {args.model} at {args.size}px, {n} {args.data} "
        f"training images, batch 64, {args.threads} threads",
        "command": "python benchmarks/passes.py " + " ".join(argv or sys.argv[1:]),
        "seconds_median": {k: round(v, 2) for k, v in med.items()},
        "images_per_s": {k: round(v, 1) for k, v in per_image.items()},
        "recalibration_images": sample,
        "features_vs_fused_time": round(med["features"] / med["fused"], 3),
        "recalibrate_vs_fused_time": round(med["recalibrate"] / med["fused"], 3),
        "recalibrate_vs_fused_per_image": round(per_image["fused"] / per_image["recalibrate"], 3),
        "loader_prepared_vs_per_image": round(med["loader_per_image"] / med["loader_prepared"], 1),
        "environment": fingerprint(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
