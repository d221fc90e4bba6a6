"""load_image / check_image / list_images on every awkward kind of file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_images import save_corrupt, save_rgb

from effnet.data import UnreadableImageError, check_image, list_images, load_image


def _pixels(path: Path) -> np.ndarray:
    im = load_image(path)
    assert im.mode == "RGB"
    return np.asarray(im)


def test_grayscale_l_is_replicated_to_three_equal_channels(tmp_path: Path) -> None:
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    px = _pixels(tmp_path / "g.png")
    assert px.shape == (16, 16, 3)
    for c in range(3):
        np.testing.assert_array_equal(px[..., c], gray)


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    # PIL's own convert("L") clips at 255 and would make all of these white.
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as raw:
        assert raw.mode.startswith("I")
    px = _pixels(tmp_path / "g16.png")
    assert px[0, :, 0].tolist() == [0, 1, 128, 255]


def test_32bit_int_grayscale(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 65535, dtype=np.int32), mode="I").save(tmp_path / "i.tif")
    assert _pixels(tmp_path / "i.tif")[0, 0].tolist() == [255, 255, 255]


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[:8] = (255, 0, 0, 255)  # opaque red
    rgba[8:12] = (255, 0, 0, 0)  # fully transparent red -> background
    rgba[12:] = (0, 0, 0, 128)  # half-transparent black over white -> mid gray
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    px = _pixels(tmp_path / "a.png")
    assert px[0, 0].tolist() == [255, 0, 0]
    assert px[9, 0].tolist() == [255, 255, 255]
    assert all(abs(v - 127) <= 1 for v in px[14, 0].tolist())


def test_la_grayscale_with_alpha(tmp_path: Path) -> None:
    la = Image.new("LA", (16, 16), (0, 0))  # black, fully transparent
    la.save(tmp_path / "la.png")
    assert _pixels(tmp_path / "la.png")[0, 0].tolist() == [255, 255, 255]


def test_palette_png_with_and_without_transparency(tmp_path: Path) -> None:
    p = Image.new("P", (16, 16), 1)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.save(tmp_path / "p.png")
    assert _pixels(tmp_path / "p.png")[3, 3].tolist() == [10, 200, 30]
    p.save(tmp_path / "pt.png", transparency=1)  # index 1 is transparent -> white
    assert _pixels(tmp_path / "pt.png")[3, 3].tolist() == [255, 255, 255]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    r, g, b = _pixels(tmp_path / "c.jpg")[8, 8].tolist()
    assert r > 200 and g < 60 and b < 60  # cyan/magenta/yellow mix of (0, 1, 1) is red


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 32 wide x 16 high: left half red, right half blue. Orientation 6 means "rotate
    # 90 degrees clockwise to display": the upright picture is 16 wide x 32 high, red on top.
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:, :16] = (255, 0, 0)
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    im = load_image(tmp_path / "rot.jpg")
    assert im.size == (16, 32)
    px = np.asarray(im).astype(int)
    assert px[4, 8, 0] > 200 and px[4, 8, 2] < 60  # top is red
    assert px[28, 8, 2] > 200 and px[28, 8, 0] < 60  # bottom is blue


def test_corrupt_file_raises_specific_error_with_path(tmp_path: Path) -> None:
    bad = save_corrupt(tmp_path / "broken.jpg")
    with pytest.raises(UnreadableImageError) as info:
        load_image(bad)
    assert info.value.path == bad
    assert str(bad) in str(info.value) and "re-export" in str(info.value)
    assert check_image(bad) is not None


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError, match=r"nope\.png"):
        load_image(tmp_path / "nope.png")


def test_truncated_jpeg_is_caught_by_deep_check_and_loader(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert check_image(tmp_path / "full.jpg", deep=True) is None
    assert check_image(tmp_path / "cut.jpg", deep=True) is not None
    with pytest.raises(UnreadableImageError):
        load_image(tmp_path / "cut.jpg")


def test_error_survives_pickling_for_dataloader_workers(tmp_path: Path) -> None:
    import pickle

    err = pickle.loads(pickle.dumps(UnreadableImageError(tmp_path / "x.jpg", "bad header")))
    assert err.path == tmp_path / "x.jpg" and err.reason == "bad header"


def test_list_images_sorted_filtered_recursive(tmp_path: Path) -> None:
    for rel in ["b/2.PNG", "b/10.jpg", "a.jpeg", "b/sub/1.webp", ".hidden/x.png", "b/.x.png"]:
        save_rgb(tmp_path / rel, (1, 2, 3))
    (tmp_path / "b" / "readme.txt").write_text("x")
    rel = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert rel == ["a.jpeg", "b/10.jpg", "b/2.PNG", "b/sub/1.webp"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.jpeg"]
    assert [p.name for p in list_images(tmp_path, extensions=["png"])] == ["2.PNG"]


def test_list_images_on_a_file_names_the_problem(tmp_path: Path) -> None:
    f = save_rgb(tmp_path / "one.png", (0, 0, 0))
    with pytest.raises(NotADirectoryError, match="expected a directory"):
        list_images(f)
