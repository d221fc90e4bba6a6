"""Peak memory of one (library, runtime) runner, measured alone in a fresh process.

Measuring resident memory inside a long benchmark process is unreliable: the C allocator keeps
memory freed by earlier runners (and by ONNX export) and hands it out again, so a later runner
looks free. A fresh process per runner starts clean: the number is its peak resident set
(``VmHWM``) minus the resident set after the libraries are imported, i.e. the weights, the
runtime's arenas and prepacked kernels, and the activations of a few inference calls.

    python -m effnet.bench.memprobe effnet onnx efficientnet_b0 32 224 2 /tmp/work
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["measure_in_subprocess"]


def measure_in_subprocess(
    library: str,
    runtime: str,
    model: str,
    batch: int,
    resolution: int,
    threads: int | None,
    workdir: str | Path,
    timeout: float = 900,
) -> float | None:
    """Peak MB of the runner in a child process; None when it cannot be measured."""
    cmd = [
        sys.executable,
        "-m",
        "effnet.bench.memprobe",
        library,
        runtime,
        model,
        str(batch),
        str(resolution),
        str(threads or 0),
        str(workdir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return None
    try:
        return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _probe(argv: list[str]) -> dict[str, Any]:
    library, runtime, model, batch, res, threads, workdir = argv
    import numpy  # noqa: F401  (imported before the baseline, like every runtime needs it)
    import onnxruntime  # noqa: F401

    from effnet.bench.runners import build_effnet, make_runner, peer_model
    from effnet.bench.timing import status_kb
    from effnet.host import torch_threads

    if runtime.startswith("openvino"):
        import openvino  # noqa: F401
    with torch_threads(int(threads)):
        base = status_kb("VmRSS")
        net = build_effnet(model) if library == "effnet" else peer_model(library, model)
        runner = make_runner(
            library, runtime, net, int(batch), int(res), workdir, int(threads) or None
        )
        del net
        for _ in range(3):
            runner.run()
        peak = status_kb("VmHWM")
    if base is None or peak is None:
        raise SystemExit("VmRSS/VmHWM unavailable (not Linux)")
    return {"peak_mb": round((peak - base) / 1024, 1)}


if __name__ == "__main__":
    print(json.dumps(_probe(sys.argv[1:])))
