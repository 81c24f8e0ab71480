"""Reading and checking a dataset table's images: any stored mode read as RGB, missing and
unreadable files named before training, resized copies for faster decoding.

Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``; ``python -m data_prep``
runs the checks over a whole download.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from finefcace.sources.table import check_paths

#: The smallest shorter side of a resized copy (:func:`cache_resized`), in pixels.
MIN_CACHE_SIZE = 8

#: Grey used under transparent pixels: it equals the normalisation mean, so it becomes 0.
_TRANSPARENT_FILL = (128, 128, 128)


class ImageReadError(OSError):
    """An image file exists but cannot be decoded (truncated, corrupt, not an image)."""


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


def read_image(path: str | os.PathLike) -> Image.Image:
    """Open an image as 8-bit RGB, whatever it was stored as.

    Grayscale, palette, CMYK, 16-bit and RGBA/LA images are converted (transparent pixels
    are laid on mid-grey, the normalisation mean). A truncated or corrupt file raises
    :class:`ImageReadError` naming the file. Introduced in notebook 01.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _to_rgb(image)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(
            f"cannot read image {path}: {error}. The file is truncated, corrupt or not an image: "
            f"download it again, or drop its row (python -m data_prep check lists all such files)."
        ) from error


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


def scan_images(table: pd.DataFrame, root: str | os.PathLike, *, decode: bool = True) -> pd.DataFrame:
    """Check every image of a table: one row per image that needs attention.

    Columns ``path``, ``problem`` (``missing``, ``unreadable``, ``converted``, ``tiny``) and
    ``detail``. ``missing`` and ``unreadable`` images cannot be used (drop their rows or
    re-download); ``converted`` (grayscale, CMYK, RGBA, palette, 16-bit) and ``tiny`` (shorter
    side < 32 px, upsampled by the transforms) are read fine and only reported. With
    ``decode=False`` only existence is checked (fast). Used by ``data_prep``; introduced in
    ``notebooks/01_dataset_preparation.ipynb``.
    """
    root = Path(root)
    rows: list[tuple[str, str, str]] = []
    for relative in table["path"].tolist():
        path = root / relative
        if not path.is_file():
            rows.append((relative, "missing", str(path)))
            continue
        if not decode:
            continue
        try:
            with Image.open(path) as image:
                image.load()
                mode, size = image.mode, image.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            rows.append((relative, "unreadable", f"{type(error).__name__}: {error}"))
            continue
        if mode != "RGB":
            rows.append((relative, "converted", f"stored as {mode}, read as RGB"))
        if min(size) < 32:
            rows.append((relative, "tiny", f"{size[0]}x{size[1]} px, upsampled by the transforms"))
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
