"""What machine and which library versions a measurement was taken with.

Latency numbers are only comparable on the same CPU with the same kernels, so the measurement
cache is keyed by :func:`fingerprint`: CPU model, the instruction-set flags that select kernels,
core counts, and the versions of torch, ONNX Runtime, effnet (and the peers).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from functools import lru_cache
from importlib import metadata
from typing import Any

from effnet.host import usable_cores

__all__ = ["cpu_info", "fingerprint", "fingerprint_key", "library_versions"]

# Flags that change which kernels oneDNN / MLAS / OpenVINO pick (and so the speed).
_KERNEL_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "sve2",
)
_LIBRARIES = ("torch", "onnxruntime", "effnet", "torchvision", "timm", "onnx", "openvino")


def _read_cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return {}
    block = text.split("\n\n", 1)[0]
    info: dict[str, str] = {}
    for line in block.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model, family, kernel-relevant flags and core counts."""
    raw = _read_cpuinfo()
    flags = set((raw.get("flags") or raw.get("Features") or "").split())
    return {
        "model": raw.get("model name") or platform.processor() or platform.machine(),
        "vendor": raw.get("vendor_id", ""),
        "family": raw.get("cpu family", ""),
        "model_number": raw.get("model", ""),
        "machine": platform.machine(),
        "flags": sorted(f for f in _KERNEL_FLAGS if f in flags),
        "all_flags_sha": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:12],
        "logical_cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
    }


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries whose kernels or models are measured."""
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("effnet") is None:  # running from a source tree
        from effnet._version import __version__

        versions["effnet"] = __version__
    versions["python"] = platform.python_version()
    return versions


def fingerprint(
    cpu: dict[str, Any] | None = None, versions: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """Hardware + versions: measurements taken under another fingerprint are not reused."""
    return {"cpu": cpu or cpu_info(), "versions": versions or library_versions()}


def fingerprint_key(fp: dict[str, Any] | None = None) -> str:
    """A short stable hash of :func:`fingerprint` (names the cache file)."""
    data = json.dumps(fp or fingerprint(), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]
