"""One batch through one model in one runtime, as a zero-argument callable.

Runtimes for effnet models:

- ``eager``: the model as built (eval, channels_last, ``torch.inference_mode``);
- ``optimized``: :func:`effnet.export.optimize` (BatchNorm folded, channels_last);
- ``compiled``: the same plus ``torch.compile`` with weight freezing (needs a C++ compiler);
- ``onnx``: exported by :func:`effnet.export.export_onnx`, run by ONNX Runtime (fp32);
- ``onnx-int8``: that graph quantized by :func:`effnet.export.quantize_int8`'s first recipe,
  calibrated on random inputs (a speed measurement only: accuracy needs real data, see
  ``benchmarks/int8_elpv.py``);
- ``openvino`` / ``openvino-bf16``: the ONNX graph compiled by OpenVINO with an fp32 or bf16
  precision hint, when the optional ``openvino`` package is installed;
- ``openvino-int8``: OpenVINO running the int8 graph of the ``convs`` recipe (int8 convolutions,
  which OpenVINO fuses with the fp32 SiLU after them), calibrated on random inputs;
  ``openvino-int8-bf16`` runs what is not int8 in bf16 (OpenVINO's default on bf16 CPUs).

Peers (timm's and torchvision's same variant) run ``eager`` and ``onnx`` (exported the way their
users would: ``torch.onnx.export`` with its defaults, ONNX Runtime folds the BatchNorms itself).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from effnet.errors import ConfigError
from effnet.registry import list_models
from effnet.specs import ModelSpec

__all__ = [
    "EFFNET_RUNTIMES",
    "PEER_NAMES",
    "PEER_RUNTIMES",
    "Runner",
    "build_effnet",
    "make_runner",
    "peer_model",
]

EFFNET_RUNTIMES = (
    "eager",
    "optimized",
    "compiled",
    "onnx",
    "onnx-int8",
    "openvino",
    "openvino-bf16",
    "openvino-int8",
    "openvino-int8-bf16",
)
PEER_RUNTIMES = ("eager", "onnx")

# effnet name -> (timm name, torchvision builder name); None where the peer has no such network.
# timm's names are effnet's (plain and tf_); torchvision's networks are effnet's B0-B4 and tv_*.
PEER_NAMES: dict[str, tuple[str | None, str | None]] = {
    **{n: (n, None) for n in list_models() if not n.startswith("tv_")},
    **{f"efficientnet_b{i}": (f"efficientnet_b{i}", f"efficientnet_b{i}") for i in range(5)},
    **{f"tv_efficientnet_b{i}": (None, f"efficientnet_b{i}") for i in (5, 6, 7)},
    **{f"tv_efficientnetv2_{s}": (None, f"efficientnet_v2_{s}") for s in "sml"},
}


@dataclass
class Runner:
    """A prepared measurement: ``run()`` pushes one batch through."""

    library: str
    runtime: str
    run: Callable[[], Any]
    setup_seconds: float
    note: str = ""


def build_effnet(model: str | ModelSpec | nn.Module, **kwargs: Any) -> nn.Module:
    """An effnet model from a name, a spec, or as given."""
    if isinstance(model, nn.Module):
        return model
    from effnet.model import EfficientNet
    from effnet.registry import get_spec

    return EfficientNet(get_spec(model) if isinstance(model, str) else model, **kwargs)


def peer_model(library: str, name: str) -> nn.Module:
    """timm's or torchvision's model for an effnet variant name (random init, 1000 classes)."""
    timm_name, tv_name = PEER_NAMES.get(name, (None, None))
    if library == "timm" and timm_name:
        import timm

        return timm.create_model(timm_name, pretrained=False)
    if library == "torchvision" and tv_name:
        import torchvision

        return getattr(torchvision.models, tv_name)(weights=None)
    raise ConfigError(
        f"{library} has no counterpart of {name}; peers exist for {sorted(PEER_NAMES)}"
    )


def _input(batch: int, chans: int, res: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, chans, res, res, generator=gen)


def _torch_runner(model: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    x = x.contiguous(memory_format=torch.channels_last)

    def run() -> Any:
        with torch.inference_mode():
            return model(x)

    return run


def _export_peer_onnx(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings(), redirect_stdout(StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (x,),
            str(path),
            dynamo=True,
            opset_version=18,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
            external_data=False,
        )


def _ort_runner(path: Path, x: np.ndarray, threads: int | None) -> Callable[[], Any]:
    import onnxruntime as ort

    from effnet.export.artifact import session_options

    sess = ort.InferenceSession(
        str(path), session_options(threads), providers=["CPUExecutionProvider"]
    )
    name = sess.get_inputs()[0].name

    def run() -> Any:
        return sess.run(None, {name: x})

    return run


def _openvino_runner(
    path: Path, x: np.ndarray, threads: int | None, precision: str
) -> Callable[[], Any]:
    try:
        import openvino as ov
    except ImportError as exc:
        raise ConfigError(
            "the openvino runtimes need the optional package: pip install openvino"
        ) from exc
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()

    def run() -> Any:
        return request.infer({0: x})

    return run


def _random_calibration(x: np.ndarray, batches: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    shape = (min(8, x.shape[0]), *x.shape[1:])
    return [
        (rng.standard_normal(shape).astype(np.float32), np.zeros(shape[0], dtype=np.int64))
        for _ in range(batches)
    ]


def make_runner(
    library: str,
    runtime: str,
    model: nn.Module,
    batch: int,
    resolution: int,
    workdir: str | os.PathLike[str],
    threads: int | None = None,
) -> Runner:
    """Prepare ``model`` (effnet's, or a peer's when ``library`` is timm/torchvision)."""
    start = time.perf_counter()
    workdir = Path(workdir)
    chans = int(getattr(model, "in_chans", 3))
    x = _input(batch, chans, resolution)
    xn = x.numpy()
    tag = f"{library}-{getattr(getattr(model, 'spec', None), 'name', type(model).__name__)}"
    tag = f"{tag}-{resolution}"
    note = ""
    model.eval()
    if library != "effnet" and runtime not in PEER_RUNTIMES:
        raise ConfigError(f"peers run {PEER_RUNTIMES}, not {runtime!r}")
    if runtime == "eager":
        run = _torch_runner(model.to(memory_format=torch.channels_last), x)
    elif runtime in ("optimized", "compiled"):
        from effnet.export import optimize

        fast = optimize(model, compile=runtime == "compiled", check=False)
        run = _torch_runner(fast, x)
        if runtime == "compiled":
            run()  # compile now, not inside the timed warm-up
    elif runtime in ("onnx", "onnx-int8") or runtime.startswith("openvino"):
        path = workdir / f"{tag}.onnx"
        if library == "effnet":
            from effnet.export import export_onnx

            if not path.exists():
                export_onnx(model, path, resolution=resolution, dynamic_batch=True)
        elif not path.exists():
            _export_peer_onnx(model, _input(2, chans, resolution), path)
        if "int8" in runtime:
            from effnet.export.quantize import OPENVINO_RECIPES, RECIPES, quantize_int8

            target = "openvino" if runtime.startswith("openvino") else "onnxruntime"
            recipe = (OPENVINO_RECIPES if target == "openvino" else RECIPES)[0]
            int8 = workdir / f"{tag}.int8-{recipe.name}.onnx"
            if not int8.exists():
                calib = _random_calibration(xn)
                quantize_int8(
                    path, calib, calib, out=int8, max_drop=None, recipes=[recipe], runtime=target
                )
            path = int8
            note = f"int8 ({recipe.name}) calibrated on random inputs: speed only"
        if runtime.startswith("openvino"):
            precision = "bf16" if runtime.endswith("bf16") else "f32"
            run = _openvino_runner(path, xn, threads, precision)
        else:
            run = _ort_runner(path, xn, threads)
    else:
        raise ConfigError(f"unknown runtime {runtime!r}; choose from {', '.join(EFFNET_RUNTIMES)}")
    return Runner(library, runtime, run, time.perf_counter() - start, note)
