"""This CPU's fp32 peak FLOP rate, measured two ways, to put achieved GFLOP/s in proportion.

- ``fma``: a register-only loop of independent 512-bit (or 256-bit) fused multiply-adds compiled
  on the spot with the system C compiler and run on ``threads`` OpenMP threads. Nothing but FMAs
  retire, so this is the machine's arithmetic ceiling at its current clock (2 FLOPs per lane per
  FMA); it needs ``cc`` and returns None without one.
- ``gemm``: a large single-precision matrix multiply through torch (MKL / oneDNN), the best
  rate a real library kernel reaches on this machine.

A CNN reaches neither: depthwise convolutions, activations and squeeze-excite are bound by
memory bandwidth, not arithmetic (see docs/performance.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["PeakFlops", "fma_peak_gflops", "gemm_peak_gflops", "measure_peak"]

# 24 independent accumulator chains: enough to cover FMA latency x throughput on current x86
# cores (Zen 4/5: 4 cycles x 2 pipes; Intel: 4 x 2), so the loop is throughput-bound.
_FMA_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>
#define CHAINS 24
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                          return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
  long iters = argc > 1 ? atol(argv[1]) : 100000000L;
  volatile float seed = 1.0f;
  float sink = 0;
  double start = now();
#pragma omp parallel reduction(+ : sink)
  {
    VEC acc[CHAINS];
    for (int k = 0; k < CHAINS; k++) acc[k] = SET1(seed + k * 1e-3f);
    VEC b = SET1(seed * 0.9999999f), c = SET1(seed * 1e-7f);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 24
      for (int k = 0; k < CHAINS; k++) acc[k] = FMA(acc[k], b, c);
    }
    VEC s = acc[0];
    for (int k = 1; k < CHAINS; k++) s = ADD(s, acc[k]);
    float lanes[LANES];
    STORE(lanes, s);
    for (int k = 0; k < LANES; k++) sink += lanes[k];
  }
  double seconds = now() - start;
  printf("%d %.6f %.3f\n", omp_get_max_threads(), seconds, sink);
  return 0;
}
"""
_WIDTHS = {
    512: (
        "-mavx512f",
        "__m512",
        "_mm512_set1_ps",
        "_mm512_fmadd_ps",
        "_mm512_add_ps",
        "_mm512_storeu_ps",
        16,
    ),
    256: (
        "-mavx2 -mfma",
        "__m256",
        "_mm256_set1_ps",
        "_mm256_fmadd_ps",
        "_mm256_add_ps",
        "_mm256_storeu_ps",
        8,
    ),
}


@dataclass
class PeakFlops:
    gflops: float | None
    method: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_has(flag: str) -> bool:
    from effnet.bench.hardware import _read_cpuinfo

    return flag in (_read_cpuinfo().get("flags") or "").split()


def fma_peak_gflops(threads: int, iterations: int = 100_000_000) -> PeakFlops:
    """Compile and run the FMA loop; None when there is no C compiler or no AVX2/AVX-512."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    width = 512 if _cpu_has("avx512f") else 256 if _cpu_has("avx2") and _cpu_has("fma") else 0
    if cc is None or not width:
        return PeakFlops(None, "fma", "no C compiler or no AVX2/AVX-512 FMA on this machine")
    flags, vec, set1, fma, add, store, lanes = _WIDTHS[width]
    with tempfile.TemporaryDirectory(prefix="effnet-peak-") as tmp:
        src, exe = Path(tmp) / "fma.c", Path(tmp) / "fma"
        src.write_text(_FMA_SOURCE)
        defines = (
            f"-DVEC={vec} -DSET1={set1} -DFMA={fma} -DADD={add} -DSTORE={store} "
            f"-DLANES={lanes} -include stdlib.h"
        )
        cmd = f"{cc} -O2 {flags} -fopenmp {defines} {src} -o {exe}"
        build = subprocess.run(cmd.split(), capture_output=True, text=True)
        if build.returncode != 0:
            return PeakFlops(None, "fma", f"compile failed: {build.stderr.strip()[:200]}")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_PROC_BIND": "spread"}
        best = 0.0
        for _ in range(3):  # best of three: other processes only ever slow it down
            out = subprocess.run(
                [str(exe), str(iterations)], capture_output=True, text=True, env=env, check=True
            ).stdout.split()
            n, seconds = int(out[0]), float(out[1])
            best = max(best, iterations * 24 * lanes * 2 * n / seconds / 1e9)
    return PeakFlops(
        round(best, 1),
        "fma",
        f"{threads} threads x 24 independent {width}-bit FMA chains, best of 3 "
        f"(2 FLOPs per lane per FMA)",
    )


def gemm_peak_gflops(threads: int, n: int = 2048, repeats: int = 5) -> PeakFlops:
    """Best rate of an n x n fp32 matrix multiply in torch (2 n^3 FLOPs)."""
    import torch

    from effnet.host import torch_threads as pin

    with pin(threads):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return PeakFlops(
        round(2 * n**3 / best / 1e9, 1), "gemm", f"torch {n}x{n} fp32 matmul, best of {repeats}"
    )


def measure_peak(threads: int) -> dict[str, Any]:
    """Both peaks; the FMA one is the denominator for "fraction of peak" when available."""
    fma = fma_peak_gflops(threads)
    gemm = gemm_peak_gflops(threads)
    return {"fma": fma.to_dict(), "gemm": gemm.to_dict(), "threads": threads}
