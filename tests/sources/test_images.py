"""Tests of finefcace/sources/images.py: reading any image as RGB, naming bad files, resized copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from finefcace.errors import DataError
from finefcace.sources.dataset import FaceTableDataset
from finefcace.sources.images import ImageReadError, cache_resized, read_image, scan_images
from finefcace.sources.transforms import test_transform
from tests.sources.fixtures import face_image


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "I;16", "LA", "1"])
def test_read_image_converts_every_mode_to_rgb(tmp_path, mode):
    rgb = face_image((20, 24))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
        assert image.mode.startswith("I;16")
        suffix = ".png"
    else:
        image = rgb.convert(mode)
        suffix = ".jpg" if mode in ("L", "CMYK") else ".png"
    path = tmp_path / f"img{suffix}"
    image.save(path)
    out = read_image(path)
    assert out.mode == "RGB" and out.size == (20, 24)
    if mode == "I;16":  # 16-bit scaled to 8 bits, not clipped to white
        np.testing.assert_allclose(np.asarray(out)[..., 0], np.asarray(rgb.convert("L")), atol=1)


def test_read_image_transparent_pixels_become_mid_grey(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.save(tmp_path / "a.png")
    out = np.asarray(read_image(tmp_path / "a.png"))
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[4, 4]) == (128, 128, 128)  # = the normalisation mean → 0 after normalising


def test_truncated_and_corrupt_images_raise_naming_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    face_image((64, 64)).save(good, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    for path in (truncated, garbage):
        with pytest.raises(ImageReadError, match=path.name) as info:
            read_image(path)
        assert "Download it again" in str(info.value) and "--drop-bad" in str(info.value)
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        read_image(tmp_path / "nothere.jpg")


def test_scan_images_reports_each_problem(tmp_path):
    face_image((64, 64)).save(tmp_path / "ok.jpg")
    face_image((64, 64)).convert("L").save(tmp_path / "gray.jpg")
    face_image((10, 12)).save(tmp_path / "tiny.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    table = pd.DataFrame({"path": ["ok.jpg", "gray.jpg", "tiny.png", "bad.jpg", "gone.jpg"], "split": "test"})
    report = scan_images(table, tmp_path)
    problems = dict(zip(report["path"], report["problem"]))
    assert problems == {"gray.jpg": "converted", "tiny.png": "tiny", "bad.jpg": "unreadable", "gone.jpg": "missing"}
    fast = scan_images(table, tmp_path, decode=False)
    assert fast["problem"].tolist() == ["missing"]


def test_cache_resized_keeps_layout_and_aspect(tmp_path, image_root):
    root, table = image_root
    out = cache_resized(table, root, tmp_path / "cache", 20, threads=2)
    for relative in table["path"]:
        cached = Image.open(out / relative)
        assert min(cached.size) == 20
        assert cached.size == (20, 24)  # 40x48 original, aspect kept
    dataset = FaceTableDataset(table, out, "gender", transform=test_transform(16))
    assert dataset[0][0].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="must differ"):
        cache_resized(table, root, root, 20)


def test_cache_resized_writes_nothing_outside_its_folder(tmp_path, image_root):
    root, table = image_root
    escaping = table.copy()
    escaping.loc[escaping.index[0], "path"] = "../" * 3 + "outside.jpg"
    with pytest.raises(DataError, match="leaves the image root"):
        cache_resized(escaping, root, tmp_path / "cache" / "in", 20)
    assert not (tmp_path / "cache").exists()


def test_real_bad_inputs_are_each_reported_with_the_file_and_the_fix(tmp_path):
    """A truncated JPEG, an empty file, a 1x1 image, a decompression bomb (a 20,000 x 20,000 PNG), a PNG named
    .jpg, a CMYK JPEG and an EXIF-rotated photo among real photographs (synthetic ones without ../shared)."""
    from tests.sources.bad_images import BAD_FILES, write_bad_files

    good, expected = write_bad_files(tmp_path)
    table = pd.DataFrame({"path": good + sorted(BAD_FILES), "split": "test"})
    report = scan_images(table, tmp_path)
    assert dict(zip(report["path"], report["problem"])) == BAD_FILES  # nothing about the good photos
    details = dict(zip(report["path"], report["detail"]))
    for name in ("truncated.jpg", "empty.jpg", "one_pixel.jpg", "bomb.png"):
        assert str(tmp_path / name) in details[name] and "--drop-bad" in details[name]
    assert "empty (0 bytes)" in details["empty.jpg"] and "1x1 pixels" in details["one_pixel.jpg"]
    assert "MAX_IMAGE_PIXELS" in details["bomb.png"] and "decompression bomb" in details["bomb.png"]
    assert details["png_named.jpg"] == "a PNG file named .jpg: read by its content"
    for name in ("truncated.jpg", "empty.jpg", "one_pixel.jpg", "bomb.png"):
        with pytest.raises(ImageReadError, match=name):
            read_image(tmp_path / name)
    np.testing.assert_array_equal(np.asarray(read_image(tmp_path / "png_named.jpg")), np.asarray(expected["png_named.jpg"]))
    upright = read_image(tmp_path / "rotated.jpg")
    assert upright.size == (150, 200)  # stored 200 wide x 150 high, displayed (and read) turned upright
    np.testing.assert_array_equal(np.asarray(upright), np.asarray(expected["rotated.jpg"]))
    cmyk = read_image(tmp_path / "cmyk.jpg")
    assert cmyk.mode == "RGB" and cmyk.size == (200, 200)


def test_the_pixel_limit_is_a_parameter_and_oversized_files_are_not_decoded(tmp_path):
    from finefcace.sources.images import MAX_IMAGE_PIXELS

    face_image((100, 80)).save(tmp_path / "photo.png")
    assert read_image(tmp_path / "photo.png").size == (100, 80)
    with pytest.raises(ImageReadError, match=r"100x80 pixels, above the limit of 5,000 pixels") as info:
        read_image(tmp_path / "photo.png", max_pixels=5000)
    assert info.value.problem == "too_large"
    assert MAX_IMAGE_PIXELS == 40_000_000
