"""Gradient checkpointing: peak memory and time of a B0 training step, with timm in the same run.

    python benchmarks/grad_checkpointing.py                 # B0, batch 32, 160 px, prints JSON
    python benchmarks/grad_checkpointing.py --size 224 --batch 16

Peak memory is the peak of live tensor storage created during forward + backward (allocator-
independent, so exactly comparable between runs and libraries: ``effnet.bench.peak_tensor_bytes``);
parameters and gradients of the previous step are not counted. Time is the median of
``--repeats`` steps. timm's ``set_grad_checkpointing`` is measured beside effnet's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def step_stats(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> dict[str, float]:
    from effnet.bench import peak_tensor_bytes

    target = torch.randint(0, 1000, (x.shape[0],))

    def step() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), target).backward()

    step()  # warm-up (and gradients exist, so the measured step frees the previous ones)
    _, peak = peak_tensor_bytes(step)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"peak_mb": round(peak / 2**20, 1), "step_s": round(statistics.median(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_b0")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)

    import effnet

    results: dict[str, dict[str, float]] = {}
    ours = effnet.create_model(args.model).train()
    results["effnet"] = step_stats(ours, x, args.repeats)
    ours.set_grad_checkpointing(True)
    results["effnet_checkpointed"] = step_stats(ours, x, args.repeats)
    try:
        import timm

        theirs = timm.create_model(args.model).train()
        results["timm"] = step_stats(theirs, x, args.repeats)
        theirs.set_grad_checkpointing(True)
        results["timm_checkpointed"] = step_stats(theirs, x, args.repeats)
    except ImportError:
        pass
    report = {
        "model": args.model,
        "batch": args.batch,
        "size": args.size,
        "threads": args.threads,
        "results": results,
        "effnet_memory_ratio": round(
            results["effnet_checkpointed"]["peak_mb"] / results["effnet"]["peak_mb"], 3
        ),
        "effnet_time_ratio": round(
            results["effnet_checkpointed"]["step_s"] / results["effnet"]["step_s"], 3
        ),
    }
    if "timm" in results:
        report["timm_memory_ratio"] = round(
            results["timm_checkpointed"]["peak_mb"] / results["timm"]["peak_mb"], 3
        )
        report["effnet_vs_timm_peak"] = round(
            results["effnet"]["peak_mb"] / results["timm"]["peak_mb"], 3
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
