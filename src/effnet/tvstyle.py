"""torchvision's model API on effnet: ``get_model``, ``get_model_weights``, ``get_weight`` and
weights enums with ``.transforms()``, ``.meta`` and ``.url``.

torchvision's names map onto effnet's: ``efficientnet_b0``-``b4`` are the same networks,
torchvision's ``efficientnet_b5``-``b7`` and ``efficientnet_v2_s/m/l`` (BatchNorm eps 1e-3) are
effnet's ``tv_efficientnet_b5``-``b7`` and ``tv_efficientnetv2_s/m/l``. For those names the
enum's members are torchvision's (``IMAGENET1K_V1``, ``DEFAULT``, ...); for any other effnet name
they are its weight tags in capitals (``RA_IN1K``), with ``DEFAULT`` the name's default.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

from torch import nn

from effnet.errors import UnknownNameError, did_you_mean
from effnet.factory import create_model
from effnet.registry import is_model, list_models
from effnet.weights.records import WeightRecord, default_record, list_records

__all__ = ["TORCHVISION_NAMES", "Weights", "get_model", "get_model_weights", "get_weight"]

TORCHVISION_NAMES: dict[str, str] = {
    **{f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(5)},
    **{f"efficientnet_b{i}": f"tv_efficientnet_b{i}" for i in (5, 6, 7)},
    **{f"efficientnet_v2_{s}": f"tv_efficientnetv2_{s}" for s in "sml"},
}
"""torchvision's builder name -> the effnet name of the same network."""


class Weights(enum.Enum):
    """A weights enum in torchvision's style; each member's value is a weight record."""

    @property
    def record(self) -> WeightRecord:
        return self.value

    @property
    def url(self) -> str | None:
        return self.record.url

    @property
    def meta(self) -> dict[str, Any]:
        return self.record.meta

    def transforms(self) -> Any:
        """The eval preprocessing these weights were trained with (a torchvision v2 pipeline)."""
        return self.record.transforms()


def _effnet_name(name: str) -> tuple[str, bool]:
    """(effnet name, whether ``name`` is torchvision's) for a torchvision or effnet name."""
    key = name.lower()
    if key in TORCHVISION_NAMES:
        return TORCHVISION_NAMES[key], True
    if is_model(name):
        return name, False
    raise UnknownNameError(
        f"unknown model {name!r}.{did_you_mean(name, [*TORCHVISION_NAMES, *list_models()])} "
        f"torchvision's names ({', '.join(TORCHVISION_NAMES)}) and effnet.list_models() work"
    )


def _enum_name(name: str, torchvision: bool) -> str:
    if torchvision:  # efficientnet_v2_s -> EfficientNet_V2_S_Weights, as torchvision spells it
        return "EfficientNet_" + name[len("efficientnet_") :].upper() + "_Weights"
    return f"{name}_Weights"


@functools.cache
def get_model_weights(name: str) -> type[Weights]:
    """The weights enum of a model name (torchvision's or effnet's)."""
    model, torchvision = _effnet_name(name)
    records = list_records(model)
    if torchvision:
        tv = sorted((r for r in records if r.source == "torchvision"), key=lambda r: r.origin)
        members = [(r.origin.rsplit(".", 1)[1], r) for r in tv]
        default = tv[-1]  # torchvision's DEFAULT is its latest (B1: IMAGENET1K_V2)
    else:
        if not records:
            default_record(model)  # raises, naming the names that do have weights
        members = [(r.tag.upper(), r) for r in records]
        default = next(r for r in records if r.default)
    members.append(("DEFAULT", default))
    return Weights(_enum_name(name.lower() if torchvision else model, torchvision), members)


def get_weight(name: str) -> Weights:
    """``"EfficientNet_B0_Weights.IMAGENET1K_V1"`` (or ``"efficientnet_b0_Weights.RA_IN1K"``)
    -> that enum member."""
    enum_name, dot, member = name.partition(".")
    if not dot or not enum_name.endswith("_Weights"):
        raise UnknownNameError(
            f"{name!r} is not a weight name like 'EfficientNet_B0_Weights.DEFAULT'"
        )
    stem = enum_name[: -len("_Weights")]
    model = (
        "efficientnet_" + stem[len("EfficientNet_") :].lower()
        if stem.startswith("EfficientNet_")
        else stem
    )
    weights = get_model_weights(model)
    try:
        return weights[member]
    except KeyError:
        raise UnknownNameError(
            f"{enum_name} has no member {member!r}; it has {', '.join(weights.__members__)}"
        ) from None


def get_model(name: str, *, weights: Weights | str | None = None, **kwargs: Any) -> nn.Module:
    """torchvision's ``get_model``: ``weights=None`` (random), ``"DEFAULT"``, a member name
    (``"IMAGENET1K_V1"``) or an enum member; ``num_classes`` and effnet's ``create_model``
    keywords pass through."""
    model, _ = _effnet_name(name)
    if weights is None:
        return create_model(model, **kwargs)
    if isinstance(weights, str):
        weights = get_model_weights(name)[weights] if "." not in weights else get_weight(weights)
    record = weights.record
    if record.model != model:
        raise UnknownNameError(f"{weights} are weights for {record.model}, not {name}")
    return create_model(f"{record.model}.{record.tag}", pretrained=True, **kwargs)
