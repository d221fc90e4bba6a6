"""Training-step throughput and memory: effnet as `effnet finetune` runs it, against timm (and
torchvision for B0) as they run by default, each model in its own process, rounds interleaved.

    python benchmarks/train_throughput.py                        # Lite0 and B0 at 128 and 224 px
    python benchmarks/train_throughput.py --models efficientnet_b0 --res 160 --rounds 5

A step is forward + backward + AdamW step, batch 32, channels_last, fp32, drop_path_rate 0.2
for every library (timm's default is 0), 2 threads. Every measurement runs in a fresh process:

- ``effnet``: the step inside ``effnet.host.fast_malloc()``, which every effnet command and
  ``effnet.finetune`` run under (glibc keeps freed memory for reuse instead of an mmap per large
  tensor; see effnet/host.py), and inside ``effnet.train.depthwise.fast_depthwise_grads``, which
  the training loop wraps every epoch in (the weight gradient of depthwise convs whose kernel is
  larger than their feature map, computed without oneDNN's slow kernel for that case), with
  torch's fused AdamW kernel, which effnet's optimizers take (``effnet.train.optim.adamw``);
- ``timm`` / ``torchvision``: the same step in a plain process, as a user of those libraries
  runs it;
- ``timm_same_malloc``: timm with the same allocator setting and the same fused AdamW, so the
  table also shows what is effnet's model code and what is the allocator and optimizer.

images/s = batch / median step time over ``--steps`` timed steps after ``--warmup`` (and
``_best_step``: over the fastest step, the least disturbed by other processes); the ratio is taken
within a round (the processes of one round run back to back) and the median over
rounds is reported. Memory: peak bytes of tensor storage alive during one step that did not
exist before it (allocator-independent; parameters and optimizer state excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any


def _model(lib: str, name: str) -> Any:
    import torch

    torch.manual_seed(0)
    if lib == "effnet":
        import effnet

        return effnet.create_model(name, drop_path_rate=0.2)
    if lib.startswith("timm"):
        import timm

        return timm.create_model(name, pretrained=False, drop_path_rate=0.2)
    import torchvision

    return getattr(torchvision.models, name)(weights=None, stochastic_depth_prob=0.2)


def worker(lib: str, name: str, res: int, batch: int, steps: int, warmup: int) -> dict[str, Any]:
    """One library's training step in this process; returns its speed and memory."""
    import contextlib

    import torch
    import torch.nn.functional as F

    from effnet.bench import peak_tensor_bytes, time_fn
    from effnet.host import fast_malloc
    from effnet.train.depthwise import fast_depthwise_grads
    from effnet.train.optim import adamw

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    ctx = fast_malloc() if lib in ("effnet", "timm_same_malloc") else contextlib.nullcontext()
    with ctx:
        model = _model(lib, name).train().to(memory_format=torch.channels_last)
        # each library's step as its training runs it: effnet's loop takes torch's fused AdamW
        # (effnet.train.optim.adamw), timm's and torchvision's reference scripts the default one
        if lib in ("effnet", "timm_same_malloc"):
            opt = adamw(model.parameters(), 1e-4)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, res, res, generator=gen).contiguous(
            memory_format=torch.channels_last
        )
        y = torch.randint(0, 1000, (batch,), generator=gen)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        # effnet's loop routes depthwise convs whose kernel is larger than their map through a
        # faster weight gradient (effnet.train.depthwise); the other libraries run torch's.
        with fast_depthwise_grads(model, enabled=lib == "effnet"):
            for _ in range(warmup):
                step()
            _, peak = peak_tensor_bytes(step)
            timing = time_fn(step, batch, warmup=0, repeats=steps)
    return {
        "images_per_s": timing.images_per_s,
        "images_per_s_best": 1000.0 * batch / timing.min_ms,
        "peak_step_mb": peak / 2**20,
    }


def _run_worker(args: argparse.Namespace, lib: str, name: str, res: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", lib, name, str(res), str(args.batch),
           str(args.steps), str(args.warmup)]  # fmt: skip
    env = {**os.environ, "BENCH_THREADS": str(args.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tf_efficientnet_lite0,efficientnet_b0")
    parser.add_argument("--res", default="128,224")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        lib, name, res, batch, steps, warmup = args.worker
        print(json.dumps(worker(lib, name, int(res), int(batch), int(steps), int(warmup))))
        return 0

    from effnet.bench import fingerprint

    load_before = os.getloadavg()
    started = time.time()
    cases: dict[str, Any] = {}
    for name in args.models.split(","):
        libs = ["effnet", "timm", "timm_same_malloc"]
        if name == "efficientnet_b0":
            libs.append("torchvision")
        for res in (int(r) for r in args.res.split(",")):
            rounds = []
            for i in range(args.rounds):
                rounds.append({lib: _run_worker(args, lib, name, res) for lib in libs})
                speeds = {k: round(v["images_per_s"], 1) for k, v in rounds[-1].items()}
                print(f"{name} {res}px round {i + 1}: {speeds}", file=sys.stderr)

            def ratio(
                a: str, b: str, rounds: list[dict[str, Any]] = rounds, key: str = "images_per_s"
            ) -> float:
                return round(statistics.median(r[a][key] / r[b][key] for r in rounds), 3)

            case = {
                "images_per_s_median": {
                    lib: round(statistics.median(r[lib]["images_per_s"] for r in rounds), 1)
                    for lib in libs
                },
                "effnet_vs_timm": ratio("effnet", "timm"),
                "effnet_vs_timm_best_step": ratio("effnet", "timm", key="images_per_s_best"),
                "effnet_vs_timm_same_malloc": ratio("effnet", "timm_same_malloc"),
                "peak_step_mb": {lib: round(rounds[0][lib]["peak_step_mb"], 1) for lib in libs},
            }
            if "torchvision" in libs:
                case["effnet_vs_torchvision"] = ratio("effnet", "torchvision")
            case["target_vs_timm_ge_1.3"] = case["effnet_vs_timm"] >= 1.3
            case["memory_vs_timm_le_1.0"] = (
                case["peak_step_mb"]["effnet"] <= case["peak_step_mb"]["timm"] * 1.001
            )
            cases[f"{name}@{res}"] = case
    result = {
        "benchmark": "training step (forward + backward + AdamW), batch "
        f"{args.batch}, channels_last, fp32, drop_path 0.2, {args.threads} threads",
        "command": "python benchmarks/train_throughput.py " + " ".join(argv or sys.argv[1:]),
        "cases": cases,
        "environment": fingerprint(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "seconds": round(time.time() - started),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
