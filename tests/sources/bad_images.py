"""Bad image files for the tests, built from real photographs when ../shared/realfaces is present
(else from synthetic images): the cases real downloads hold (issue: real bad inputs)."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from tests.sources.fixtures import face_image

REALFACES = Path(os.environ.get("FINEFCACE_REALFACES", Path(__file__).resolve().parents[2].parent / "shared" / "realfaces"))

#: The bad files and the problem each must be reported as (``scan_images``).
BAD_FILES = {
    "truncated.jpg": "unreadable",
    "empty.jpg": "unreadable",
    "one_pixel.jpg": "too_small",
    "bomb.png": "too_large",
    "png_named.jpg": "misnamed",
    "cmyk.jpg": "converted",
    "rotated.jpg": "rotated",
}
UNUSABLE = {name for name, problem in BAD_FILES.items() if problem in ("unreadable", "too_small", "too_large")}


def source_photos(n: int = 4) -> list[Image.Image]:
    """``n`` photographs: real UTKFace JPEGs when present, else synthetic images (the test still runs)."""
    folder = REALFACES / "utkface" / "UTKFace"
    if folder.is_dir():
        names = sorted(os.listdir(folder))[:n]
        return [Image.open(folder / name).convert("RGB") for name in names]
    return [face_image((200, 200), seed=i) for i in range(n)]


def write_bad_files(folder: Path) -> tuple[list[str], dict[str, Image.Image]]:
    """Write good photos ``good_<i>.jpg`` and the :data:`BAD_FILES` into ``folder``; returns the good
    names and, for the readable bad ones, the picture they must read as."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = source_photos(4)
    good = []
    for i, photo in enumerate(photos[:2]):
        photo.save(folder / f"good_{i}.jpg", quality=92)
        good.append(f"good_{i}.jpg")
    whole = (folder / "good_0.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (1, 1), (120, 90, 80)).save(folder / "one_pixel.jpg")
    Image.new("L", (20_000, 20_000)).save(folder / "bomb.png")  # ~400 KB on disk, 400 megapixels decoded
    photos[2].save(folder / "png_named.jpg", format="PNG")
    photos[3].convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    wide = photos[1].crop((0, 0, 200, 150))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    wide.save(folder / "rotated.jpg", exif=exif, quality=95)
    expected = {"png_named.jpg": photos[2], "rotated.jpg": Image.open(folder / "rotated.jpg").transpose(Image.Transpose.ROTATE_270)}
    return good, expected
