"""Converters between effnet's state dicts and torchvision's, timm's and efficientnet_pytorch's.

Each foreign format is an explicit table of layer names (one module per format). Converting checks
that every expected key is there, that nothing is left over and that every shape fits, and reports
what is missing, unexpected or mis-shaped by name. Foreign libraries are never imported here: a
state dict is all a converter needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType

import torch

from effnet.errors import UnknownNameError, WeightsError
from effnet.model import EfficientNet
from effnet.registry import get_spec, list_models
from effnet.specs import ModelSpec
from effnet.weights.convert import lukemelas, timm, torchvision
from effnet.weights.convert.layout import expand

__all__ = [
    "FORMATS",
    "ConversionError",
    "ConversionReport",
    "detect_format",
    "from_effnet",
    "guess_variant",
    "to_effnet",
]

FORMATS: dict[str, ModuleType] = {"torchvision": torchvision, "timm": timm, "lukemelas": lukemelas}
_ALIASES = {
    "efficientnet_pytorch": "lukemelas",
    "efficientnet-pytorch": "lukemelas",
    "tv": "torchvision",
}


@dataclass
class ConversionReport:
    """What a conversion found; ``ok`` when nothing is missing, left over or mis-shaped."""

    fmt: str
    model: str
    matched: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"{self.fmt} -> {self.model}: {self.matched} tensors matched"]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                lines.append(f"  {len(items)} {label}: {', '.join(items[:5])}{more}")
        for key, want, got in self.mismatched[:5]:
            lines.append(f"  shape of {key}: expected {want}, found {got}")
        if len(self.mismatched) > 5:
            lines.append(f"  (+{len(self.mismatched) - 5} more shape mismatches)")
        return "\n".join(lines)


class ConversionError(WeightsError):
    """A state dict that does not fit the architecture; carries the full report."""

    def __init__(self, report: ConversionReport, hint: str = "") -> None:
        self.report = report
        super().__init__(f"checkpoint does not fit {report.model}:\n{report}{hint}")


def normalise_format(fmt: str) -> str:
    fmt = _ALIASES.get(fmt, fmt)
    if fmt not in (*FORMATS, "effnet"):
        raise UnknownNameError(
            f"unknown checkpoint format {fmt!r}; expected one of effnet, "
            f"{', '.join(FORMATS)} (efficientnet_pytorch is 'lukemelas')"
        )
    return fmt


def detect_format(state_dict: Mapping[str, torch.Tensor], source: object = None) -> str:
    """Which library wrote this state dict, from its stem's key; ``source`` (the file) is named
    in the error for a state dict of no EfficientNet effnet knows."""
    keys = set(state_dict)
    if "stem.conv.weight" in keys:
        return "effnet"
    for name, module in FORMATS.items():
        if module.STEM_KEY in keys:
            return name
    sample = ", ".join(sorted(keys)[:4]) or "no keys at all"
    what = f"{source} is" if source is not None else "this checkpoint is"
    raise WeightsError(
        f"{what} not an EfficientNet state dict effnet can read: its keys ({sample}, ...) match "
        f"no effnet, torchvision, timm or efficientnet_pytorch EfficientNet: it holds another "
        f"network, or another library's EfficientNet. Pass an EfficientNet checkpoint, or its "
        f"format explicitly (--from) if it is one of those."
    )


def expected_shapes(spec: ModelSpec, num_classes: int, in_chans: int) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = EfficientNet(spec, num_classes=num_classes, in_chans=in_chans)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _classes_and_chans(
    state_dict: Mapping[str, torch.Tensor], fc: str, stem: str
) -> tuple[int, int]:
    num_classes = state_dict[fc].shape[0] if fc in state_dict else 0
    in_chans = state_dict[stem].shape[1] if stem in state_dict else 3
    return int(num_classes), int(in_chans)


def _remap(
    state_dict: Mapping[str, torch.Tensor],
    pairs: list[tuple[str, str]],
    shapes: dict[str, tuple[int, ...]],
    report: ConversionReport,
    src_is_ours: bool,
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for ours, theirs in pairs:
        src, dst = (ours, theirs) if src_is_ours else (theirs, ours)
        if src not in state_dict:
            if src.endswith("num_batches_tracked"):  # absent from some exports; harmless
                out[dst] = torch.tensor(0, dtype=torch.long)
            else:
                report.missing.append(src)
            continue
        tensor = state_dict[src]
        used.add(src)
        want = shapes.get(ours)
        if want is not None and tuple(tensor.shape) != want:
            report.mismatched.append((src, want, tuple(tensor.shape)))
            continue
        out[dst] = tensor
        report.matched += 1
    report.unexpected = sorted(set(state_dict) - used)
    return out


def _pairs(spec: ModelSpec, fmt: str) -> tuple[list[tuple[str, str]], str, str]:
    """(our key, foreign key) pairs, plus the foreign names of the classifier and stem weights."""
    if fmt == "effnet":
        pairs = [(k, k) for k in expected_shapes(spec, 1, 3)]
    else:
        pairs = expand(FORMATS[fmt].layer_pairs(spec))
    lookup = dict(pairs)
    return pairs, lookup["classifier.weight"], lookup["stem.conv.weight"]


def _convert(
    state_dict: Mapping[str, torch.Tensor], spec: ModelSpec, fmt: str, src_is_ours: bool
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    pairs, fc, stem = _pairs(spec, fmt)
    if src_is_ours:
        fc, stem = "classifier.weight", "stem.conv.weight"
    num_classes, in_chans = _classes_and_chans(state_dict, fc, stem)
    if num_classes == 0:  # a headless checkpoint: convert the backbone only
        pairs = [(o, t) for o, t in pairs if not o.startswith("classifier")]
    shapes = expected_shapes(spec, max(num_classes, 1), in_chans)
    report = ConversionReport("effnet" if src_is_ours else fmt, spec.name)
    return _remap(state_dict, pairs, shapes, report, src_is_ours), report


def to_effnet(
    state_dict: Mapping[str, torch.Tensor], spec: ModelSpec, fmt: str | None = None
) -> dict[str, torch.Tensor]:
    """Convert a foreign (or effnet) state dict to effnet keys, checking keys and shapes.

    The classifier size and input channels are taken from the checkpoint itself; a headless
    checkpoint (no classifier) converts to a state dict without ``classifier.*``.
    """
    fmt = normalise_format(fmt) if fmt else detect_format(state_dict)
    out, report = _convert(state_dict, spec, fmt, src_is_ours=False)
    if not report.ok:
        guess = guess_variant(state_dict, fmt)
        hint = (
            f"\nIt looks like a checkpoint of {guess}: pass {guess!r} as the model."
            if (guess and guess != spec.name)
            else ""
        )
        raise ConversionError(report, hint)
    return out


def from_effnet(
    state_dict: Mapping[str, torch.Tensor], spec: ModelSpec, fmt: str
) -> dict[str, torch.Tensor]:
    """Convert an effnet state dict to ``fmt``'s keys (torchvision, timm or lukemelas)."""
    fmt = normalise_format(fmt)
    out, report = _convert(state_dict, spec, fmt, src_is_ours=True)
    if not report.ok:
        raise ConversionError(report)
    return out


def guess_variant(state_dict: Mapping[str, torch.Tensor], fmt: str | None = None) -> str | None:
    """The registered variant whose every key and shape this state dict matches, if any."""
    fmt = normalise_format(fmt) if fmt else detect_format(state_dict)
    for name in list_models():
        spec = get_spec(name)
        if fmt == "lukemelas" and any(s.block == "fused" for s in spec.stages):
            continue
        try:
            _, report = _convert(state_dict, spec, fmt, src_is_ours=False)
        except KeyError:
            continue
        if report.ok:
            return name
    return None
