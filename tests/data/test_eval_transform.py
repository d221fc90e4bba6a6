"""eval_transform: parity with torchvision's own preset on a real photo, and binding to weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata
from torchvision.models import EfficientNet_B0_Weights

from effnet import create_model
from effnet.data import eval_transform, load_image, resolve_preprocess
from effnet.specs import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig

# torchvision's EfficientNet-B0 IMAGENET1K_V1 preset (see efficientnet-facts.md).
TV_B0 = PreprocessConfig(input_size=224, interpolation="bicubic", resize=256)


@pytest.fixture(scope="module")
def cat_photo(tmp_path_factory: pytest.TempPathFactory) -> Image.Image:
    """skimage's 451x300 "chelsea" photo, through a file and load_image like a real run."""
    path = tmp_path_factory.mktemp("photo") / "chelsea.png"
    Image.fromarray(skdata.chelsea()).save(path)
    return load_image(path)


def test_matches_torchvision_efficientnet_b0_preset(cat_photo: Image.Image) -> None:
    ours = eval_transform(TV_B0)(cat_photo)
    theirs = EfficientNet_B0_Weights.IMAGENET1K_V1.transforms()(cat_photo)
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_matches_a_hand_computation(cat_photo: Image.Image) -> None:
    cfg = PreprocessConfig(input_size=64, crop_pct=0.8, interpolation="bilinear")
    assert cfg.resize_size == 80
    w, h = cat_photo.size  # 451 x 300: the short side is the height
    resized = cat_photo.resize((round(80 * w / h), 80), Image.Resampling.BILINEAR)
    rw, rh = resized.size
    left, top = round((rw - 64) / 2), round((rh - 64) / 2)
    crop = np.asarray(resized.crop((left, top, left + 64, top + 64)), dtype=np.float32) / 255
    expected = (crop - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    expected_t = torch.from_numpy(expected.transpose(2, 0, 1).astype(np.float32))
    torch.testing.assert_close(eval_transform(cfg)(cat_photo), expected_t, atol=1e-5, rtol=0)


def test_binds_to_a_model_record_or_saved_dict(cat_photo: Image.Image) -> None:
    model = create_model("efficientnet_b0", num_classes=3)
    assert resolve_preprocess(model) == model.preprocess

    class Record:  # stands in for a weights record written elsewhere
        preprocess = TV_B0

    expected = eval_transform(TV_B0)(cat_photo)
    torch.testing.assert_close(eval_transform(Record())(cat_photo), expected)
    torch.testing.assert_close(eval_transform(TV_B0.to_dict())(cat_photo), expected)
    assert eval_transform(model)(cat_photo).shape == (3, *(model.preprocess.input_size,) * 2)


def test_rejects_objects_without_preprocessing() -> None:
    with pytest.raises(TypeError, match=r"expected a PreprocessConfig.*got int"):
        eval_transform(3)


def test_one_channel_model_gets_grayscale_and_averaged_stats(cat_photo: Image.Image) -> None:
    model = create_model("efficientnet_b0", num_classes=2, in_chans=1)
    cfg = PreprocessConfig(input_size=32, crop_pct=1.0, interpolation="bilinear")
    model.preprocess = cfg
    out = eval_transform(model)(cat_photo)
    assert out.shape == (1, 32, 32)
    gray = cat_photo.convert("L").resize((48, 32), Image.Resampling.BILINEAR).crop((8, 0, 40, 32))
    mean, std = sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3
    expected = (torch.from_numpy(np.asarray(gray, dtype=np.float32)) / 255 - mean) / std
    torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=0)
    # The 1-channel pipeline runs through the model end to end.
    assert model.eval()(out[None]).shape == (1, 2)


def test_grayscale_input_to_rgb_pipeline_is_replicated() -> None:
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), mode="L")
    out = eval_transform(PreprocessConfig(input_size=16, crop_pct=1.0))(gray)
    assert out.shape == (3, 16, 16)
    # Channel c is (x - mean_c) / std_c of the same gray value.
    x = out * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    torch.testing.assert_close(x[0], x[1])
    torch.testing.assert_close(x[1], x[2])
    torch.testing.assert_close(x[0] * 255, torch.arange(256.0).reshape(16, 16))


def test_rejects_unsupported_channel_counts() -> None:
    with pytest.raises(ValueError, match="in_chans must be 1"):
        eval_transform(TV_B0, in_chans=4)
