"""Post-training static int8 quantization with ONNX Runtime, checked on held-out data.

Naive int8 (per-tensor weights, everything quantized) is known to cost EfficientNet more than 15
points of top-1: depthwise filters have very different ranges per channel, and the SiLU and the
squeeze-excite gates are sensitive. :func:`quantize_int8` therefore

1. exports the fp32 model (BatchNorm folded) to ONNX,
2. calibrates activation ranges on batches drawn from the user's data,
3. quantizes weights per output channel (QDQ format, int8 weights, uint8 activations), trying
   recipes from fastest to most conservative (see :data:`RECIPES`), and
4. measures top-1 of fp32 and int8 on a held-out split, returning the first recipe whose drop is
   within ``max_drop`` points, or refusing with the measured numbers
   (:class:`Int8AccuracyError`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from effnet.errors import ConfigError, EffnetError
from effnet.export.artifact import (
    RUNTIMES,
    onnx_runner,
    read_export_metadata,
    write_export_metadata,
)

__all__ = [
    "OPENVINO_RECIPES",
    "RECIPES",
    "RUNTIMES",
    "Int8AccuracyError",
    "Int8Recipe",
    "Int8Report",
    "evaluate_onnx",
    "quantize_int8",
    "sensitive_nodes",
]


@dataclass(frozen=True)
class Int8Recipe:
    """Which ops are quantized, which nodes stay fp32, and how ranges are calibrated."""

    name: str
    op_types: tuple[str, ...] | None
    """ONNX op types to quantize (None: every type ONNX Runtime can quantize)."""
    keep_fp32: tuple[str, ...] = ()
    """Node groups left in fp32: ``"stem"``, ``"head"``, ``"se"`` (squeeze-excite convs)."""
    calibrate: str = "minmax"
    """``"minmax"``, ``"percentile"`` or ``"entropy"``."""


_ALL_OPS = Int8Recipe("all-ops", None, ("stem", "head"))
_CONVS = Int8Recipe("convs", ("Conv", "Gemm", "MatMul", "Add"), ("stem", "head"))
_CONVS_NO_SE = Int8Recipe("convs-no-se", ("Conv", "Gemm", "MatMul", "Add"), ("stem", "head", "se"))

RECIPES: tuple[Int8Recipe, ...] = (_ALL_OPS, _CONVS, _CONVS_NO_SE)
"""For ONNX Runtime, fastest first: ``all-ops`` runs the SiLU and squeeze-excite multiplies in
int8 too (ONNX Runtime has int8 kernels for them); ``convs`` quantizes only convolution and
classifier inputs; ``convs-no-se`` also keeps the squeeze-excite convolutions in fp32. The stem
(3-channel input) and the classifier stay fp32 in all of them."""

OPENVINO_RECIPES: tuple[Int8Recipe, ...] = (_CONVS, _CONVS_NO_SE, _ALL_OPS)
"""For OpenVINO, which fuses an int8 convolution with the fp32 SiLU that follows it, ``convs``
is the fastest."""


@dataclass
class Int8Report:
    """fp32 vs int8 accuracy on held-out data, and which recipe produced the int8 model."""

    path: str | None
    fp32_path: str
    recipe: str | None
    runtime: str
    fp32_top1: float
    int8_top1: float | None
    drop_points: float | None
    agreement: float | None
    """Fraction of held-out images where int8 and fp32 predict the same class."""
    eval_images: int
    calibration_images: int
    max_drop: float | None
    accepted: bool
    seconds: float
    tried: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        head = f"fp32 top-1 {self.fp32_top1:.2f}%"
        if self.int8_top1 is None or self.drop_points is None:
            return head
        return (
            f"{head} | int8 top-1 {self.int8_top1:.2f}% ({self.drop_points:+.2f} points drop, "
            f"recipe {self.recipe}) | agreement {100 * (self.agreement or 0):.1f}% on "
            f"{self.eval_images} held-out images, calibrated on {self.calibration_images}"
        )


class Int8AccuracyError(EffnetError, RuntimeError):
    """int8 lost more accuracy than allowed; carries the measured :class:`Int8Report`."""

    exit_code = 3

    def __init__(self, report: Int8Report) -> None:
        self.report = report
        tried = "; ".join(
            f"{t['recipe']}: {t['int8_top1']:.2f}% ({t['drop_points']:+.2f})" for t in report.tried
        )
        super().__init__(
            f"refusing int8: it loses {report.drop_points:.2f} points of top-1 (fp32 "
            f"{report.fp32_top1:.2f}% -> int8 {report.int8_top1:.2f}% on {report.eval_images} "
            f"held-out images), more than the allowed {report.max_drop} (tried {tried}). "
            f"Calibrate on more representative images, raise max_drop knowingly, or ship fp32."
        )


def _batches(loader: Iterable[Any], limit: int | None) -> Iterator[tuple[np.ndarray, Any]]:
    """(images as float32 NCHW numpy, labels) from (images, labels) batches of any kind."""
    seen = 0
    for item in loader:
        images, labels = (item[0], item[1]) if isinstance(item, (tuple, list)) else (item, None)
        array = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
        if limit is not None and seen + len(array) > limit:
            array = array[: limit - seen]
            labels = None if labels is None else labels[: limit - seen]
        if len(array) == 0:
            break
        seen += len(array)
        yield array, (None if labels is None else np.asarray(labels).reshape(-1))
        if limit is not None and seen >= limit:
            break


def evaluate_onnx(
    path: str | os.PathLike[str],
    batches: Sequence[tuple[np.ndarray, np.ndarray | None]],
    threads: int | None = None,
    runtime: str = "onnxruntime",
) -> tuple[float, np.ndarray]:
    """(top-1 % against the labels, predicted classes) of an ONNX classifier in ``runtime``."""
    run = onnx_runner(path, runtime, threads)
    preds, correct, total = [], 0, 0
    for images, labels in batches:
        pred = np.asarray(run(images)).argmax(-1)
        preds.append(pred)
        if labels is not None:
            correct += int((pred == labels).sum())
            total += len(labels)
    top1 = 100.0 * correct / total if total else float("nan")
    return top1, (np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64))


def sensitive_nodes(model: Any) -> dict[str, list[str]]:
    """Names of the stem conv, the classifier and the squeeze-excite convs of an ONNX graph."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    graph_inputs = {i.name for i in graph.input}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    stem = [n.name for n in convs if n.input[0] in graph_inputs][:1]
    outputs = {o.name for o in graph.output}
    head = [
        n.name for n in graph.node if n.op_type in ("Gemm", "MatMul") and set(n.output) & outputs
    ]

    def fed_by(node: Any, op: str) -> Any:
        src = producer.get(node.input[0])
        return src if src is not None and src.op_type == op else None

    reduce = [n for n in convs if fed_by(n, "GlobalAveragePool") is not None]
    reduce_out = {n.output[0] for n in reduce}
    expand = []
    for n in convs:
        # SE expand conv: its input is the activation of a reduce conv (Mul/Relu/Clip of it)
        src = producer.get(n.input[0])
        if src is not None and any(i in reduce_out for i in src.input):
            expand.append(n)
    return {"stem": stem, "head": head, "se": [n.name for n in reduce + expand]}


def _name_nodes(model: Any) -> Any:
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    return model


def _calibration_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if name not in methods:
        raise ConfigError(f"calibration must be one of {sorted(methods)}, got {name!r}")
    return methods[name]


def _reader(batches: list[np.ndarray], input_name: str) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {input_name: batch}

    return Reader()


def _calibrate(
    fp32: Path, calib: list[np.ndarray], input_name: str, method: str, out: Path
) -> Path:
    """Activation ranges of every tensor, saved as an ONNX Runtime calibration cache.

    One batch at a time: the calibrator reduces each batch to ranges (merged with the previous
    ones) before the next, so memory holds one batch of activations, not all of them.
    """
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="effnet-calib-") as tmp:
        calibrator = create_calibrator(
            fp32,
            None,  # every op type, so any recipe finds its tensors' ranges
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=_calibration_method(method),
            extra_options={"percentile": 99.999} if method == "percentile" else {},
        )
        for batch in calib:
            calibrator.collect_data(_reader([batch], input_name))
        ranges = calibrator.compute_data()
        del calibrator
    save_tensors_data(ranges, out)
    return out


def _quantize(fp32: Path, out: Path, recipe: Int8Recipe, ranges: Path) -> None:
    import onnx

    model = onnx.load(str(fp32))
    groups = sensitive_nodes(model)
    exclude = [name for group in recipe.keep_fp32 for name in groups.get(group, [])]
    kwargs: dict[str, Any] = {}
    if recipe.op_types is not None:
        kwargs["op_types_to_quantize"] = list(recipe.op_types)
    with _quiet_preprocessing_advice():
        _quantize_static(fp32, out, recipe, ranges, exclude, kwargs)


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextmanager
def _quiet_preprocessing_advice() -> Iterator[None]:
    """ONNX Runtime logs advice to run its pre-processing; effnet's graph is already folded."""
    root = logging.getLogger()
    advice = _DropAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _quantize_static(
    fp32: Path, out: Path, recipe: Int8Recipe, ranges: Path, exclude: list[str], kwargs: Any
) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        str(fp32),
        str(out),
        None,  # ranges come from the calibration cache
        quant_format=QuantFormat.QDQ,
        per_channel=True,  # depthwise filters differ wildly per channel: per-tensor loses >15 pts
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        calibrate_method=_calibration_method(recipe.calibrate),
        calibration_cache_path=str(ranges),
        **kwargs,
    )


def quantize_int8(
    model_or_onnx: Any,
    calibration_loader: Iterable[Any],
    eval_loader: Iterable[Any],
    *,
    out: str | os.PathLike[str] | None = None,
    max_drop: float | None = 1.0,
    recipes: Sequence[Int8Recipe] | None = None,
    runtime: str = "onnxruntime",
    calibration_images: int | None = 512,
    eval_images: int | None = None,
    resolution: int | None = None,
    threads: int | None = None,
) -> Int8Report:
    """Quantize to int8 and check it: returns the :class:`Int8Report` of the accepted model.

    Args:
        model_or_onnx: an effnet model (exported to fp32 ONNX first) or the path of an fp32 ONNX
            file exported by effnet.
        calibration_loader: (images, labels) batches, preprocessed like the model expects
            (NCHW float); labels are ignored. Draw them from the user's training data.
        eval_loader: held-out (images, labels) batches on which fp32 and int8 top-1 are measured.
        out: where the int8 ONNX goes (default: a temporary directory, see ``report.path``).
        max_drop: largest accepted top-1 drop in points; ``None`` accepts any drop (reported).
        recipes: tried in order; the first within ``max_drop`` wins (default
            :data:`RECIPES`, or :data:`OPENVINO_RECIPES` for OpenVINO).
        runtime: where the int8 model will run, and so where both models are evaluated:
            ``"onnxruntime"``, ``"openvino"`` or ``"openvino-bf16"`` (optional package; see
            :data:`~effnet.export.artifact.RUNTIMES`).
        calibration_images: at most this many calibration images are used.
        eval_images: at most this many held-out images are used (default: all).

    Raises :class:`Int8AccuracyError` (with the report) when no recipe stays within
    ``max_drop``; nothing is written to ``out`` then.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if recipes is None:
        recipes = OPENVINO_RECIPES if runtime.startswith("openvino") else RECIPES
    start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="effnet-int8-"))
    target = Path(out) if out is not None else workdir / "model.int8.onnx"
    calib, held_out = _read_batches(
        calibration_loader, eval_loader, calibration_images, eval_images
    )
    fp32, metadata = _fp32_onnx(model_or_onnx, target, workdir, out is not None, resolution)
    # the reference is true fp32 even when the int8 model will run with bf16 elsewhere
    reference = "openvino" if runtime == "openvino-bf16" else runtime
    fp32_top1, fp32_pred = evaluate_onnx(fp32, held_out, threads, reference)
    tried, best = _try_recipes(
        fp32, workdir, recipes, calib, held_out, fp32_top1, fp32_pred, runtime, threads, max_drop
    )
    drop, candidate, recipe, top1, agreement = best
    accepted = max_drop is None or drop <= max_drop
    report = Int8Report(
        path=str(target) if accepted else None,
        fp32_path=str(fp32),
        recipe=recipe.name,
        runtime=runtime,
        fp32_top1=fp32_top1,
        int8_top1=top1,
        drop_points=drop,
        agreement=agreement,
        eval_images=sum(len(b) for b, _ in held_out),
        calibration_images=sum(len(b) for b in calib),
        max_drop=max_drop,
        accepted=accepted,
        seconds=time.perf_counter() - start,
        tried=tried,
    )
    if accepted:
        target.parent.mkdir(parents=True, exist_ok=True)
        _save_with_metadata(candidate, target, {**metadata, "int8": report.to_dict()})
    if out is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    if not accepted:
        raise Int8AccuracyError(report)
    return report


def _read_batches(
    calibration_loader: Iterable[Any],
    eval_loader: Iterable[Any],
    calibration_images: int | None,
    eval_images: int | None,
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray | None]]]:
    """(calibration images, labelled held-out batches) as numpy, each at most the count given."""
    calib = [images for images, _ in _batches(calibration_loader, calibration_images)]
    held_out = list(_batches(eval_loader, eval_images))
    if not calib:
        raise ConfigError("the calibration loader yielded no images; pass (images, labels) batches")
    if not held_out or any(labels is None for _, labels in held_out):
        raise ConfigError(
            "the eval loader must yield labelled (images, labels) batches to measure the int8 drop"
        )
    return calib, held_out


def _fp32_onnx(
    model_or_onnx: Any, target: Path, workdir: Path, keep: bool, resolution: int | None
) -> tuple[Path, dict[str, Any]]:
    """(the fp32 ONNX file, its metadata): the file given, or the model exported (next to
    ``target`` when ``keep``, else in ``workdir``)."""
    from effnet.export.formats import export_onnx

    if isinstance(model_or_onnx, (str, os.PathLike)):
        fp32 = Path(model_or_onnx)
        if not fp32.is_file():
            raise FileNotFoundError(f"no ONNX file at {fp32}; export one with `effnet export`")
        try:
            return fp32, read_export_metadata(fp32)
        except FileNotFoundError:
            return fp32, {}
    stem = target.name.removesuffix(".onnx").removesuffix(".int8")
    fp32 = target.with_name(stem + ".fp32.onnx") if keep else workdir / "fp32.onnx"
    fp32.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model_or_onnx, fp32, resolution=resolution, dynamic_batch=True)
    return fp32, read_export_metadata(fp32)


def _try_recipes(
    fp32: Path,
    workdir: Path,
    recipes: Sequence[Int8Recipe],
    calib: list[np.ndarray],
    held_out: list[tuple[np.ndarray, np.ndarray | None]],
    fp32_top1: float,
    fp32_pred: np.ndarray,
    runtime: str,
    threads: int | None,
    max_drop: float | None,
) -> tuple[list[dict[str, Any]], tuple[float, Path, Int8Recipe, float, float]]:
    """Quantize with each recipe in turn until one stays within ``max_drop``; (what was tried,
    the best: drop, file, recipe, top-1, agreement)."""
    import onnx

    # name every node so recipes can exclude them, once, in a copy; calibrate once (every
    # tensor of the fp32 graph) per method, the ranges shared by the recipes
    named = workdir / "named.fp32.onnx"
    onnx.save(_name_nodes(onnx.load(str(fp32))), str(named))
    input_name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
    ranges = {
        method: _calibrate(named, calib, input_name, method, workdir / f"ranges-{method}.json")
        for method in {r.calibrate for r in recipes}
    }
    tried: list[dict[str, Any]] = []
    best: tuple[float, Path, Int8Recipe, float, float] | None = None
    for i, recipe in enumerate(recipes):
        candidate = workdir / f"candidate{i}.int8.onnx"
        _quantize(named, candidate, recipe, ranges[recipe.calibrate])
        top1, pred = evaluate_onnx(candidate, held_out, threads, runtime)
        agreement = float((pred == fp32_pred).mean()) if len(pred) else float("nan")
        drop = fp32_top1 - top1
        tried.append(
            {"recipe": recipe.name, "int8_top1": top1, "drop_points": drop, "agreement": agreement}
        )
        if best is None or drop < best[0]:
            best = (drop, candidate, recipe, top1, agreement)
        if max_drop is None or drop <= max_drop:
            break
    if best is None:
        raise ConfigError("no int8 recipe to try: pass at least one in recipes")
    return tried, best


def _save_with_metadata(src: Path, dst: Path, metadata: dict[str, Any]) -> None:
    import onnx

    from effnet.export.graph import set_metadata

    onnx.save(set_metadata(onnx.load(str(src)), metadata), str(dst))
    write_export_metadata(dst, metadata)
