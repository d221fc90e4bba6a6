"""The catalog: every record's key map and shapes fit its model; defaults exist; tags resolve."""

from __future__ import annotations

import pytest
import torch

import effnet
from effnet.weights import RECORDS, default_record, find_record, list_records, to_effnet

MODELS = effnet.list_models()


def test_every_variant_has_a_default_record() -> None:
    for name in MODELS:
        record = default_record(name)
        assert record.model == name and record.default
        assert record.url or record.package


def test_record_options_build_valid_models() -> None:
    for r in RECORDS:
        spec = effnet.get_spec(r.model, **r.arch)
        assert r.preprocess.input_size >= 192
        assert spec.padding in ("same", "symmetric")
        assert r.sha256 is None or len(r.sha256) >= 8


def test_torchvision_records_match_torchvision_metadata() -> None:
    import torchvision.models as tvm

    by_origin = {r.origin: r for r in RECORDS if r.source == "torchvision"}
    for enum_name in dir(tvm):
        if not (enum_name.startswith("EfficientNet_") and enum_name.endswith("_Weights")):
            continue
        for weights in getattr(tvm, enum_name):
            record = by_origin[f"{enum_name}.{weights.name}"]
            transforms = weights.transforms()
            assert record.url == weights.url
            assert record.top1 == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
            assert record.preprocess.input_size == transforms.crop_size[0]
            assert record.preprocess.resize_size == transforms.resize_size[0]
            assert record.preprocess.interpolation == transforms.interpolation.value
            with torch.device("meta"):
                model = effnet.create_model(record.model, **record.arch)
            assert sum(p.numel() for p in model.parameters()) == weights.meta["num_params"]


def foreign_model(record):  # type: ignore[no-untyped-def]
    """The publisher's own network for a record, on the meta device (no memory, no init)."""
    if record.source == "timm":
        timm = pytest.importorskip("timm")
        return timm.create_model(record.origin.split(" ", 1)[1].split(".")[0])
    if record.source == "pypi":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(record.model.replace("_", "-"))
    from efficientnet_pytorch import EfficientNet

    return EfficientNet.from_name(record.model.replace("_", "-"))


@pytest.mark.parametrize(
    "record", [r for r in RECORDS if r.source != "torchvision"], ids=lambda r: r.name
)
def test_record_key_map_fits_the_publishers_network(record) -> None:  # type: ignore[no-untyped-def]
    """Every key and shape of the publisher's state dict maps onto ours (checked on meta)."""
    with torch.device("meta"):
        theirs = foreign_model(record)
    spec = effnet.get_spec(record.model, **record.arch)
    converted = to_effnet(theirs.state_dict(), spec, record.format)
    with torch.device("meta"):
        ours = effnet.create_model(record.model, **record.arch)
    assert converted.keys() == ours.state_dict().keys()
    assert sum(v.numel() for k, v in converted.items() if "running" not in k and "num_b" not in k) \
        == sum(p.numel() for p in ours.parameters())  # fmt: skip


def test_lookup_by_tag_and_publisher_name() -> None:
    assert find_record("efficientnet_b0", "tf_ns_jft_in1k").sha256 == "c0e6a31c"
    assert find_record("efficientnet_b0", "tf_efficientnet_b0.ns_jft_in1k").tag == "tf_ns_jft_in1k"
    assert list_records("efficientnet_lite0")[0].tag == "lite_pypi"  # default first
    with pytest.raises(KeyError, match="available: tv_in1k"):
        find_record("efficientnet_b0", "nope")


def test_record_transforms_are_the_bound_preprocessing() -> None:
    record = find_record("efficientnet_b1", "tv_in1k_v2")
    steps = {type(t).__name__: t for t in record.transforms().transforms}
    assert steps["Resize"].size == [255]
    assert steps["Resize"].interpolation.value == "bilinear"
    assert list(steps["CenterCrop"].size) == [240, 240]
