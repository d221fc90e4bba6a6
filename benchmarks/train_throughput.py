"""Training throughput and memory of effnet B0 vs timm's and torchvision's B0, in one run.

    python benchmarks/train_throughput.py                  # 3 rounds, prints JSON
    python benchmarks/train_throughput.py --rounds 1 --steps 5

Setting (issue 5 / training at scale): batch 32 at 128x128, channels_last, fp32, SGD with
momentum 0.9, 1000 classes, 2 threads, the three models built with their defaults (dropout and
stochastic depth on). Each round runs warm-up steps, then times one training step of each model
in turn (round-robin), ``--steps`` times; images/s = batch / median step time. The ratio is
taken inside a round and the median over rounds is reported.

Memory, two honest measures (CPU has no ``max_memory_allocated``):

- ``peak_step_mb``: peak bytes of tensor storage alive during one training step that did not
  exist before it (activations, gradients, workspace tensors), tracked op by op with a torch
  dispatch mode (effnet.bench.peak_tensor_bytes). Parameters and optimizer state are equal for
  the three models and excluded; allocator caching cannot blur it.
- ``saved_for_backward_mb``: what autograd keeps between forward and backward (the activation
  memory that memory-efficient layers reduce), storages de-duplicated, parameters excluded.

Targets: >= 1.15x timm and >= 1.0x torchvision in images/s; peak memory <= 0.85x timm's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F


def _models() -> dict[str, torch.nn.Module]:
    import timm
    import torchvision

    import effnet

    torch.manual_seed(0)
    return {
        "effnet": effnet.create_model("efficientnet_b0"),
        "timm": timm.create_model("efficientnet_b0", pretrained=False),
        "torchvision": torchvision.models.efficientnet_b0(weights=None),
    }


def _step_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Any:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per model per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)

    from effnet.bench import fingerprint, measure_interleaved, peak_tensor_bytes
    from effnet.bench.timing import saved_tensor_bytes

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.res, args.res, generator=gen)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch,), generator=gen)
    models = {k: m.train().to(memory_format=torch.channels_last) for k, m in _models().items()}
    steps = {k: _step_fn(m, x, y) for k, m in models.items()}

    memory: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        steps[name]()  # creates the momentum buffers first: they are not step memory
        _, peak = peak_tensor_bytes(steps[name])
        params = list(model.parameters())
        _, saved = saved_tensor_bytes(lambda m=model: m(x), exclude=params)
        memory[name] = {
            "peak_step_mb": round(peak / 2**20, 1),
            "saved_for_backward_mb": round(saved / 2**20, 1),
        }

    started = time.time()
    per_round: list[dict[str, float]] = []
    best_round: list[dict[str, float]] = []  # from the fastest step: others only slow it down
    for i in range(args.rounds):
        t = measure_interleaved(steps, args.batch, args.warmup, args.steps)
        per_round.append({k: round(v.images_per_s, 2) for k, v in t.items()})
        best_round.append({k: round(1000 * args.batch / v.min_ms, 2) for k, v in t.items()})
        print(f"round {i + 1}/{args.rounds}: {per_round[-1]}", file=sys.stderr)

    def ratio(a: str, b: str) -> dict[str, Any]:
        values = [r[a] / r[b] for r in per_round]
        best = [r[a] / r[b] for r in best_round]
        return {
            "median": round(statistics.median(values), 3),
            "per_round": [round(v, 3) for v in values],
            "best_based": round(statistics.median(best), 3),
        }

    vs_timm, vs_tv = ratio("effnet", "timm"), ratio("effnet", "torchvision")
    mem_ratio = memory["effnet"]["peak_step_mb"] / memory["timm"]["peak_step_mb"]
    saved_ratio = (
        memory["effnet"]["saved_for_backward_mb"] / memory["timm"]["saved_for_backward_mb"]
    )

    def target(measured: float, goal: float, higher: bool = True) -> dict[str, Any]:
        met = measured >= goal if higher else measured <= goal
        out = {"measured": round(measured, 3), "goal": goal, "met": met}
        if not met:
            out["missed_by"] = f"{abs(measured / goal - 1) * 100:.1f}%"
        return out

    result = {
        "benchmark": "EfficientNet-B0 training step, batch 32 @128px, channels_last, fp32, SGD",
        "command": "python benchmarks/train_throughput.py " + " ".join(argv or sys.argv[1:]),
        "threads": args.threads,
        "images_per_s_per_round": per_round,
        "images_per_s_median": {
            k: round(statistics.median(r[k] for r in per_round), 2) for k in models
        },
        "memory": memory,
        "targets": {
            "throughput_vs_timm_ge_1.15": {**target(vs_timm["median"], 1.15), **vs_timm},
            "throughput_vs_torchvision_ge_1.0": {**target(vs_tv["median"], 1.0), **vs_tv},
            "peak_step_memory_vs_timm_le_0.85": target(mem_ratio, 0.85, higher=False),
            "saved_for_backward_vs_timm": round(saved_ratio, 3),
        },
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
