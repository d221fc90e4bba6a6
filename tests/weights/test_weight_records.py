"""The catalog: every record's key map and shapes fit its model; defaults exist; tags resolve;
a record never changes the network its name builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import effnet
from effnet.errors import UnknownNameError
from effnet.specs import MIN_INPUT_SIZE, split_flavour
from effnet.weights import (
    RECORDS,
    default_record,
    find_record,
    from_effnet,
    list_records,
    to_effnet,
)

MODELS = effnet.list_models()
WITH_WEIGHTS = sorted({r.model for r in RECORDS})


def test_every_variant_has_weights_under_some_name() -> None:
    """Each row of the variant table has a default weight in at least one flavour; names with
    weights have exactly one default; names without say where the weights are."""
    variants = {split_flavour(n)[1] for n in MODELS}
    assert variants == {split_flavour(n)[1] for n in WITH_WEIGHTS}
    for name in WITH_WEIGHTS:
        record = default_record(name)
        assert record.model == name and record.default
        assert record.url or record.package
    with pytest.raises(UnknownNameError, match="exist under tf_efficientnet_lite1"):
        default_record("efficientnet_lite1")


def test_record_names_match_the_publishers_architecture() -> None:
    """TF ports (timm's tf_*, efficientnet_pytorch, the PyPI Lite files) are tf_ names with SAME
    padding and eps 1e-3; timm's PyTorch-trained files are plain names (eps 1e-5); torchvision's
    files are plain names for eps 1e-5 (B0-B4) and tv_ names for eps 1e-3 (B5-B7, V2)."""
    for r in RECORDS:
        spec = effnet.get_spec(r.model)
        tf_port = r.source in ("lukemelas", "pypi") or r.origin.startswith("timm tf_")
        assert r.model.startswith("tf_") == tf_port, r.name
        if tf_port:
            assert (spec.padding, spec.bn_eps) == ("same", 1e-3)
        if r.source == "torchvision":
            assert spec.padding == "symmetric"
            assert spec.bn_eps == (1e-3 if r.model.startswith("tv_") else 1e-5), r.name
        if r.source == "timm" and not tf_port:
            assert (spec.padding, spec.bn_eps) == ("symmetric", 1e-5)
        assert r.preprocess.input_size >= 192
        assert r.sha256 is None or len(r.sha256) >= 8


def module_graph(model: torch.nn.Module) -> list[tuple[object, ...]]:
    """Every module (type, BatchNorm eps, padding) and every tensor (shape, dtype), in order."""
    modules = [(n, type(m).__name__, getattr(m, "eps", None), getattr(m, "padding", None))
               for n, m in model.named_modules()]  # fmt: skip
    tensors = [(k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()]
    return modules + tensors


@pytest.mark.parametrize("name", WITH_WEIGHTS)
def test_plain_and_pretrained_constructors_build_the_same_network(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """timm's invariant: the name alone fixes the module graph, with or without weights.
    ``create_model(name, pretrained=True)`` runs for real, on the meta device, with the file
    fetch and read replaced by the plain model's own tensors in the default record's format."""
    import effnet.model
    from effnet.weights import loading

    # weight init only fills values, which meta tensors have none of; on meta it is most of
    # the time of the three model builds (two of them to check the converted shapes)
    monkeypatch.setattr(effnet.model, "_init_weights", lambda module: None)
    record = default_record(name)
    with torch.device("meta"):
        plain = effnet.create_model(name)
    served: list[object] = []

    def fetch(rec, progress=True):  # type: ignore[no-untyped-def]
        served.append(rec)
        return Path(f"/nonexistent/{rec.filename}")

    def read_state_dict(path):  # type: ignore[no-untyped-def]
        assert path == Path(f"/nonexistent/{record.filename}")
        return from_effnet(plain.state_dict(), plain.spec, record.format), {}

    monkeypatch.setattr(loading, "fetch", fetch)
    monkeypatch.setattr(loading, "read_state_dict", read_state_dict)
    with torch.device("meta"):
        pretrained = effnet.create_model(name, pretrained=True)
    assert served == [record]  # the default record, fetched once
    assert pretrained.spec == plain.spec == effnet.get_spec(name)
    assert module_graph(pretrained) == module_graph(plain)
    assert pretrained.pretrained_source == record.name and plain.pretrained_source is None
    assert pretrained.preprocess == plain.preprocess == record.preprocess
    assert pretrained.pretrained_cfg == plain.pretrained_cfg  # timm: the default cfg either way
    assert pretrained.class_names is not None and len(pretrained.class_names) == 1000


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(WITH_WEIGHTS)))
def test_pretrained_without_a_record_names_where_the_weights_are(name: str) -> None:
    with pytest.raises(UnknownNameError, match="exist under"):
        effnet.create_model(name, pretrained=True)


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
            assert record.preprocess.mean == tuple(transforms.mean)
            assert record.preprocess.std == tuple(transforms.std)
            assert record.min_size == weights.meta["min_size"]
            with torch.device("meta"):
                model = effnet.create_model(record.model)
            assert sum(p.numel() for p in model.parameters()) == weights.meta["num_params"]


def test_other_records_give_effnets_smallest_input_as_min_size() -> None:
    """torchvision's files say what torchvision says (above); the rest effnet's minimum."""
    others = [r for r in RECORDS if r.source != "torchvision"]
    assert others and all(r.min_size == (MIN_INPUT_SIZE, MIN_INPUT_SIZE) for r in others)


def foreign_model(record):  # type: ignore[no-untyped-def]
    """The publisher's own network for a record, on the meta device (no memory, no init)."""
    if record.source == "timm":
        timm = pytest.importorskip("timm")
        return timm.create_model(record.origin.split(" ", 1)[1].split(".")[0])
    variant = split_flavour(record.model)[1].replace("_", "-")
    if record.source == "pypi":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(variant)
    from efficientnet_pytorch import EfficientNet

    return EfficientNet.from_name(variant)


def one_per_key_map() -> list:  # type: ignore[type-arg]
    """Tags of one model from one publisher share a key map: one record of each."""
    seen: dict[tuple[str, str], object] = {}
    for r in RECORDS:
        if r.source != "torchvision":
            seen.setdefault((r.source, r.model), r)
    return list(seen.values())


@pytest.mark.parametrize("record", one_per_key_map(), ids=lambda r: r.name)
def test_record_key_map_fits_the_publishers_network(record) -> None:  # type: ignore[no-untyped-def]
    """Every key and shape of the publisher's state dict maps onto ours (checked on meta)."""
    with torch.device("meta"):
        theirs = foreign_model(record)
    spec = effnet.get_spec(record.model)
    converted = to_effnet(theirs.state_dict(), spec, record.format)
    with torch.device("meta"):
        ours = effnet.create_model(record.model)
    assert converted.keys() == ours.state_dict().keys()
    assert sum(v.numel() for k, v in converted.items() if "running" not in k and "num_b" not in k) \
        == sum(p.numel() for p in ours.parameters())  # fmt: skip


def test_lookup_by_tag_and_publisher_name() -> None:
    assert find_record("tf_efficientnet_b0", "ns_jft_in1k").sha256 == "c0e6a31c"
    assert find_record("tf_efficientnet_b0", "tf_efficientnet_b0.ns_jft_in1k").tag == "ns_jft_in1k"
    assert find_record("efficientnet_b1", "IMAGENET1K_V2").tag == "tv2_in1k"
    assert list_records("tf_efficientnet_lite0")[0].tag == "lite_pypi"  # default first
    assert default_record("tf_efficientnetv2_s").tag == "in21k_ft_in1k"  # timm's default
    with pytest.raises(KeyError, match="Available: ra_in1k"):
        find_record("efficientnet_b0", "nope")
    with pytest.raises(KeyError, match=r"The tag exists for tf_efficientnet_b0\.ns_jft_in1k"):
        find_record("efficientnet_b0", "ns_jft_in1k")


def test_record_transforms_are_the_bound_preprocessing() -> None:
    record = find_record("efficientnet_b1", "tv2_in1k")
    steps = {type(t).__name__: t for t in record.transforms().transforms}
    assert steps["Resize"].size == [255]
    assert steps["Resize"].interpolation.value == "bilinear"
    assert list(steps["CenterCrop"].size) == [240, 240]
