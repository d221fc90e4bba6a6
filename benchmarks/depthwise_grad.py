"""What the training loop's depthwise weight gradient buys, measured without process-to-process
noise: one model in one process, training steps alternating with and without
``effnet.train.depthwise.fast_depthwise_grads``.

    python benchmarks/depthwise_grad.py                         # Lite0 and B0 at 64 and 128 px
    python benchmarks/depthwise_grad.py --models efficientnet_b0 --res 96 --rounds 12

A step is forward + backward + AdamW, batch 32, channels_last, fp32, drop_path_rate 0.2, 2
threads, under ``effnet.host.fast_malloc`` (as effnet's commands run). Each round takes one warm-up
step and two timed steps per setting, the settings in turn; the ratio is torch's median step time
over the routed one's. Prints JSON with both speeds, the ratio, and how many depthwise convs took
the shifted-sum gradient at that size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def measure(name: str, res: int, rounds: int, batch: int) -> dict[str, float | int]:
    import torch
    import torch.nn.functional as F

    import effnet
    from effnet.train.depthwise import fast_depthwise_grads, routed

    torch.manual_seed(0)
    model = effnet.create_model(name, drop_path_rate=0.2).train()
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, res, res).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,))
    taken: list[bool] = []
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    hooks = [m.register_forward_hook(lambda mod, a, _: taken.append(routed(mod, a[0])))
             for m in depthwise]  # fmt: skip
    model(x)
    for h in hooks:
        h.remove()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for fast in (False, True):
            with fast_depthwise_grads(model, enabled=fast):
                step()
                start = time.perf_counter()
                step()
                step()
                times[fast].append((time.perf_counter() - start) / 2)
    torch_s, fast_s = statistics.median(times[False]), statistics.median(times[True])
    return {
        "images_per_s_torch": round(batch / torch_s, 1),
        "images_per_s_routed": round(batch / fast_s, 1),
        "routed_vs_torch": round(torch_s / fast_s, 3),
        "depthwise_convs": len(depthwise),
        "taking_the_shifted_gradient": sum(taken),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tf_efficientnet_lite0,efficientnet_b0")
    parser.add_argument("--res", default="64,128")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from effnet.bench import fingerprint
    from effnet.host import fast_malloc, torch_threads

    cases = {}
    with torch_threads(args.threads), fast_malloc():
        for name in args.models.split(","):
            for res in (int(r) for r in args.res.split(",")):
                cases[f"{name}@{res}"] = measure(name, res, args.rounds, args.batch)
                print(f"{name} {res}px: {cases[f'{name}@{res}']}", file=sys.stderr)
    print(json.dumps({
        "benchmark": "training step with and without the shifted-sum depthwise weight gradient, "
        f"batch {args.batch}, channels_last, fp32, {args.threads} threads, one process",
        "command": "python benchmarks/depthwise_grad.py " + " ".join(argv or sys.argv[1:]),
        "cases": cases,
        "environment": fingerprint(),
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
