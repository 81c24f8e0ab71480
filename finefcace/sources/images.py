"""Reading and checking a dataset table's images: any stored mode read as RGB and upright,
missing, unreadable, oversized and too-small files named before training, resized copies for
faster decoding.

The limits (one documented place): an image may hold at most :data:`MAX_IMAGE_PIXELS`
pixels (width × height; a larger one — a decompression bomb, or an unreduced photograph — is
refused before it is decoded) and must be at least :data:`MIN_IMAGE_SIDE` pixels on its
shorter side (smaller holds no face; a 1×1 file is a placeholder, not a photo). Images with
an EXIF orientation are turned upright when read. Introduced in the book in
``notebooks/01_dataset_preparation.ipynb``; ``python -m data_prep <dataset> --decode`` runs
the checks over a whole download and writes every problem to ``<dataset>_problems.csv``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageReadError", "MAX_IMAGE_PIXELS", "MIN_IMAGE_SIDE", "TINY_IMAGE_SIDE", "UNUSABLE_PROBLEMS",
           "cache_resized", "missing_images", "read_image", "require_images", "scan_images"]

from finefcace.sources.table import check_paths

#: The smallest shorter side of a resized copy (:func:`cache_resized`), in pixels.
MIN_CACHE_SIZE = 8

#: Grey used under transparent pixels: it equals the normalisation mean, so it becomes 0.
_TRANSPARENT_FILL = (128, 128, 128)

#: Most pixels (width × height) an image may hold: 40 megapixels, e.g. 7,300 × 5,500. Larger
#: files are refused before decoding (a 438 KB PNG can declare 20,000 × 20,000 pixels and take
#: 1.2 GB to decode). Face datasets ship crops of a few hundred pixels; reduce a larger photo
#: first (``read_image(path, max_pixels=...)`` accepts another limit).
MAX_IMAGE_PIXELS = 40_000_000
#: Shorter side below which an image is refused (it cannot hold a face).
MIN_IMAGE_SIDE = 8
#: Shorter side below which an image is read but reported (``tiny``: the transforms upsample it).
TINY_IMAGE_SIDE = 32
#: Problems of :func:`scan_images` that make an image unusable (its row must be dropped).
UNUSABLE_PROBLEMS: tuple[str, ...] = ("missing", "unreadable", "too_large", "too_small")
#: File suffixes and the formats they promise (a PNG named ``.jpg`` is read by its content).
_SUFFIX_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF",
                   ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


class ImageReadError(OSError):
    """An image file exists but cannot be used: truncated, corrupt, empty, not an image, above
    :data:`MAX_IMAGE_PIXELS` or below :data:`MIN_IMAGE_SIDE`. The message names the file and
    the fix; :attr:`problem` is the :func:`scan_images` problem name."""

    def __init__(self, message: str, problem: str = "unreadable") -> None:
        super().__init__(message)
        self.problem = problem


#: What to do about an unusable image (every message ends with it).
_ADVICE = ("Download it again or replace it, or leave its row out: `python -m data_prep <dataset> --root <folder> "
           "--decode` lists every such file and `--drop-bad` writes the table without them")


def missing_images(table: pd.DataFrame, root: str | os.PathLike) -> list[str]:
    """Paths of the table (relative to ``root``) that are not files. Introduced in notebook 01."""
    root = Path(root)
    return [p for p in table["path"].tolist() if not (root / p).is_file()]


def require_images(table: pd.DataFrame, root: str | os.PathLike) -> None:
    """Raise ``FileNotFoundError`` naming the first missing image paths, before training.

    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    missing = missing_images(table, root)
    if missing:
        shown = ", ".join(str(Path(root) / p) for p in missing[:5])
        raise FileNotFoundError(
            f"{len(missing)} of {len(table)} images of the table are missing under {root} "
            f"(first: {shown}). Check the dataset root folder, finish the download, or drop "
            f"those rows (the data_prep commands list them all)."
        )


def _load(path: Path, max_pixels: int) -> tuple[Image.Image, list[tuple[str, str]]]:
    """The decoded image, upright (EXIF orientation applied), and the notices about it
    (``converted``, ``rotated``, ``misnamed``, ``tiny``); :class:`ImageReadError` when unusable."""
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.stat().st_size == 0:
        raise ImageReadError(f"cannot read image {path}: the file is empty (0 bytes). {_ADVICE}.")
    notes: list[tuple[str, str]] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise _too_large(path, f"{width}x{height} pixels", max_pixels)
                if min(width, height) < MIN_IMAGE_SIDE:
                    raise ImageReadError(
                        f"image {path} is {width}x{height} pixels, below the minimum of {MIN_IMAGE_SIDE} px on its "
                        f"shorter side (finefcace.sources.images.MIN_IMAGE_SIDE): it cannot hold a face (a "
                        f"placeholder or a failed download?). {_ADVICE}.", "too_small")
                image.load()
                stored_format, mode = image.format, image.mode
                orientation = image.getexif().get(0x0112, 1)
                upright = ImageOps.exif_transpose(image) if orientation not in (None, 1) else image
                rgb = _to_rgb(upright)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise _too_large(path, f"too large to open ({error})", max_pixels) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageReadError(
            f"cannot read image {path}: {error}. The file is truncated, corrupt or not an image. {_ADVICE}."
        ) from error
    if mode != "RGB":
        notes.append(("converted", f"stored as {mode}, read as RGB"))
    if orientation not in (None, 1):
        notes.append(("rotated", f"EXIF orientation {orientation}: turned upright when read"))
    promised = _SUFFIX_FORMATS.get(path.suffix.lower())
    if promised is not None and stored_format is not None and stored_format != promised:
        notes.append(("misnamed", f"a {stored_format} file named {path.suffix}: read by its content"))
    if min(rgb.size) < TINY_IMAGE_SIDE:
        notes.append(("tiny", f"{rgb.size[0]}x{rgb.size[1]} px, upsampled by the transforms"))
    return rgb, notes


def _too_large(path: Path, size: str, max_pixels: int) -> ImageReadError:
    return ImageReadError(
        f"image {path} is {size}, above the limit of {max_pixels:,} pixels "
        f"(finefcace.sources.images.MAX_IMAGE_PIXELS): refused without decoding it (a decompression bomb, "
        f"or a photograph that was never reduced). Reduce it with an image tool first. {_ADVICE}.", "too_large")


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image as 8-bit RGB, upright, whatever it was stored as.

    Grayscale, palette, CMYK, 16-bit and RGBA/LA images are converted (transparent pixels
    are laid on mid-grey, the normalisation mean); an EXIF orientation is applied; the file's
    content decides its format (a PNG named ``.jpg`` is read as the PNG it is). A truncated,
    corrupt or empty file, one above ``max_pixels`` (:data:`MAX_IMAGE_PIXELS`) or below
    :data:`MIN_IMAGE_SIDE` raises :class:`ImageReadError` naming the file and the fix.
    Introduced in notebook 01.
    """
    return _load(Path(path), max_pixels)[0]


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _TRANSPARENT_FILL + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def scan_images(table: pd.DataFrame, root: str | os.PathLike, *, decode: bool = True,
                max_pixels: int = MAX_IMAGE_PIXELS) -> pd.DataFrame:
    """Check every image of a table: one row per image problem, never an exception for a bad file.

    Columns ``path``, ``problem`` and ``detail`` (the message, naming the file and the fix).
    Unusable (:data:`UNUSABLE_PROBLEMS`; drop their rows or replace the files): ``missing``,
    ``unreadable`` (truncated, corrupt, empty, not an image), ``too_large`` (above
    ``max_pixels``, refused before decoding), ``too_small`` (below :data:`MIN_IMAGE_SIDE`).
    Read fine and only reported: ``converted`` (grayscale, CMYK, RGBA, palette, 16-bit),
    ``rotated`` (an EXIF orientation, applied), ``misnamed`` (e.g. a PNG named ``.jpg``),
    ``tiny`` (shorter side < :data:`TINY_IMAGE_SIDE`, upsampled by the transforms). With
    ``decode=False`` only existence is checked (fast). Used by ``data_prep``; introduced in
    ``notebooks/01_dataset_preparation.ipynb``.
    """
    root = Path(root)
    rows: list[tuple[str, str, str]] = []
    for relative in table["path"].tolist():
        path = root / relative
        if not path.is_file():
            rows.append((relative, "missing", f"image file not found: {path}"))
            continue
        if not decode:
            continue
        try:
            _, notes = _load(path, max_pixels)
        except ImageReadError as error:
            rows.append((relative, error.problem, str(error)))
            continue
        rows.extend((relative, problem, detail) for problem, detail in notes)
    return pd.DataFrame(rows, columns=["path", "problem", "detail"])


def cache_resized(
    table: pd.DataFrame,
    root: str | os.PathLike,
    out_root: str | os.PathLike,
    size: int,
    *,
    quality: int = 95,
    threads: int = 4,
) -> Path:
    """Write copies of the table's images resized so that their shorter side is ``size``
    (aspect kept, RGB JPEG/PNG as the original's suffix) under ``out_root`` at the same
    relative paths; existing copies are kept. Train with ``root=out_root`` afterwards: the
    transforms then start from small files (faster decoding). Returns ``out_root``.
    Used by ``data_prep --cache-size``; introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    from concurrent.futures import ThreadPoolExecutor

    root, out_root = Path(root), Path(out_root)
    check_paths(table, "the table of the resized copies")  # every copy stays under out_root
    if size < MIN_CACHE_SIZE:
        raise ValueError(f"cache size must be at least {MIN_CACHE_SIZE} pixels, got {size}")
    if root.resolve() == out_root.resolve():
        raise ValueError(f"the cache folder must differ from the dataset root ({root})")

    def copy(relative: str) -> None:
        target = out_root / relative
        if target.is_file():
            return
        image = read_image(root / relative)
        scale = size / min(image.size)
        new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(new_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        if target.suffix.lower() in (".jpg", ".jpeg"):
            image.save(partial, format="JPEG", quality=quality)
        else:
            image.save(partial, format="PNG", compress_level=1)
        os.replace(partial, target)  # never leave a half-written image behind

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(copy, table["path"].tolist()))
    return out_root
