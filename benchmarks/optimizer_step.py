"""The optimizer step alone: torch's default AdamW (foreach) against the fused kernel that
``effnet.train.optim.adamw`` takes, over the parameters of Lite0 and B0, timed round-robin in
one process.

    python benchmarks/optimizer_step.py
    python benchmarks/optimizer_step.py --models efficientnet_b2 --repeats 50

Every parameter gets a random gradient once; each timed call is one ``step()``. Prints JSON: the
median milliseconds per step of each and the ratio default / fused.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tf_efficientnet_lite0,efficientnet_b0")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    import effnet
    from effnet.bench import fingerprint, measure_interleaved
    from effnet.host import fast_malloc, torch_threads
    from effnet.train.optim import adamw

    cases = {}
    with torch_threads(args.threads), fast_malloc():
        for name in args.models.split(","):
            model = effnet.create_model(name)
            for p in model.parameters():
                p.grad = torch.randn_like(p)
            default = torch.optim.AdamW(model.parameters(), lr=1e-4)
            fused = adamw(model.parameters(), 1e-4)
            timing = measure_interleaved(
                {"default": default.step, "fused": fused.step}, warmup=2, repeats=args.repeats
            )
            slow, fast = timing["default"].median_ms, timing["fused"].median_ms
            cases[name] = {
                "fused_kernel": bool(fused.param_groups[0].get("fused")),
                "default_ms": round(slow, 2),
                "fused_ms": round(fast, 2),
                "default_vs_fused": round(slow / fast, 2),
            }
            print(f"{name}: {cases[name]}", file=sys.stderr)
    print(json.dumps({
        "benchmark": f"AdamW step over a model's parameters, {args.threads} threads, one process",
        "command": "python benchmarks/optimizer_step.py " + " ".join(argv or sys.argv[1:]),
        "cases": cases,
        "environment": fingerprint(),
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
