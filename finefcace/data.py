"""One table format and one ``Dataset`` for every face dataset.

Every adapter (FairFace, UTKFace, LFWA+, CelebA in :mod:`finefcace.datasets`, the synthetic
faces in :mod:`finefcace.synthetic`) turns its files into a *dataset table*: a
``pandas.DataFrame`` with

- ``path``: image path relative to a root folder,
- ``split``: one of ``train``, ``val``, ``test``,
- target columns (``gender``, the CelebA attributes as 0/1 ints, ...),
- protected columns (``race``, ``gender`` or ``tone``).

:class:`FaceTableDataset` reads any such table; the paper's transforms (method.md §4, the
published train/test transforms) are :func:`train_transform` and :func:`test_transform`.
Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

SPLITS: tuple[str, ...] = ("train", "val", "test")
GENDERS: list[str] = ["Female", "Male"]

#: The 13 "gender-independent" CelebA attributes the paper classifies (spec/metrics.md).
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "Bags_Under_Eyes", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Chubby",
    "Eyeglasses", "Gray_Hair", "High_Cheekbones", "Mouth_Slightly_Open", "Narrow_Eyes",
    "Smiling", "Wearing_Hat",
)

#: Grey used under transparent pixels: it equals the normalisation mean, so it becomes 0.
_TRANSPARENT_FILL = (128, 128, 128)

#: Published resize ratio: images are resized to input·460/448, then cropped to input.
RESIZE_RATIO = 460 / 448


class ImageReadError(OSError):
    """An image file exists but cannot be decoded (truncated, corrupt, not an image)."""


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------

def validate_table(table: pd.DataFrame, target: str | None = None) -> None:
    """Check the table contract (``path``, ``split`` in train/val/test, target present).

    Raises ``ValueError`` naming the first offending rows and how to fix them.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    missing = [c for c in ("path", "split") if c not in table.columns]
    if missing:
        raise ValueError(
            f"dataset table lacks column(s) {missing}; a table needs 'path' (relative to the "
            f"image root) and 'split' (train/val/test). Columns present: {list(table.columns)}"
        )
    bad = ~table["split"].isin(SPLITS)
    if bad.any():
        rows = table.index[bad][:5].tolist()
        values = table.loc[bad, "split"].unique()[:5].tolist()
        raise ValueError(
            f"dataset table: {int(bad.sum())} row(s) with a split outside {SPLITS} "
            f"(rows {rows}, values {values}); fix the 'split' column"
        )
    if target is not None:
        if target not in table.columns:
            raise ValueError(
                f"target {target!r} is not a column of the table; available: {list(table.columns)}"
            )
        nan = table[target].isna()
        if nan.any():
            rows = table.index[nan][:5].tolist()
            raise ValueError(
                f"target {target!r} is missing in {int(nan.sum())} row(s) (first rows {rows}); "
                f"drop those rows or fill the labels"
            )


def classes_for(table: pd.DataFrame, target: str) -> list:
    """Label encoding of ``target``: the list whose positions are the class indices.

    ``gender`` → ``["Female", "Male"]``; 0/1 attribute columns → ``[0, 1]``; any other
    column → its sorted distinct values. Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    if target not in table.columns:
        raise ValueError(f"target {target!r} is not a column of the table; available: {list(table.columns)}")
    if target == "gender":
        return list(GENDERS)
    values = pd.unique(table[target].dropna())
    if len(values) and all(_is_binary(v) for v in values):
        return [0, 1]
    return sorted(values.tolist(), key=str)


def _is_binary(value: Any) -> bool:
    try:
        return float(value) in (0.0, 1.0) and not isinstance(value, str)
    except (TypeError, ValueError):
        return False


def load_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a dataset table written by :func:`save_table` (CSV). Introduced in notebook 01."""
    table = pd.read_csv(path, dtype={"path": str, "split": str}, keep_default_na=True)
    validate_table(table)
    return table


def save_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a dataset table as CSV (no index; LF line ends). Introduced in notebook 01."""
    validate_table(table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, lineterminator="\n")
    return path


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


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------

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
    if size < 8:
        raise ValueError(f"cache size must be at least 8 pixels, got {size}")
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


# --------------------------------------------------------------------------------------
# Transforms (method.md §4: the published train/test transforms)
# --------------------------------------------------------------------------------------

def resize_size(size: int) -> int:
    """Side of the square resize before cropping: ``round(size·460/448)`` (448 → 460)."""
    return int(round(size * RESIZE_RATIO))


class CentreFraction:
    """Keep the central ``fraction`` of an image (each side), before the paper's resize.

    LFW images (250×250, face centred, much background) are customarily centre-cropped for
    attribute tests; FairFace, UTKFace and CelebA crops need none (``face_crop=None``).
    """

    def __init__(self, fraction: float) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"face_crop must be in (0, 1], got {fraction}")
        self.fraction = float(fraction)

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        keep_w, keep_h = max(1, round(width * self.fraction)), max(1, round(height * self.fraction))
        left, top = (width - keep_w) // 2, (height - keep_h) // 2
        return image.crop((left, top, left + keep_w, top + keep_h))

    def __repr__(self) -> str:
        return f"CentreFraction({self.fraction})"


def _prefix(face_crop: float | None) -> list:
    return [] if face_crop is None else [CentreFraction(face_crop)]


def train_transform(size: int, *, padding: int = 8, face_crop: float | None = None) -> Callable:
    """Paper's train transform: resize to size·460/448 (square), random crop to ``size`` with
    8 px padding, horizontal flip, normalise with mean = std = 0.5 (method.md §4).
    ``face_crop`` first keeps the image's central fraction (see :class:`CentreFraction`).

    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    side = resize_size(size)
    return transforms.Compose([
        *_prefix(face_crop),
        transforms.Resize((side, side), antialias=True),
        transforms.RandomCrop(size, padding=padding),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    ])


def test_transform(size: int, *, face_crop: float | None = None) -> Callable:
    """Paper's test transform: the same square resize, centre crop to ``size``, normalise.
    ``face_crop`` first keeps the image's central fraction (see :class:`CentreFraction`).

    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    side = resize_size(size)
    return transforms.Compose([
        *_prefix(face_crop),
        transforms.Resize((side, side), antialias=True),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    ])


test_transform.__test__ = False  # not a pytest test, though its name starts with "test"


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo the mean = std = 0.5 normalisation (for display): values back in [0, 1]."""
    return (images * 0.5 + 0.5).clamp(0, 1)


# --------------------------------------------------------------------------------------
# Dataset and loader
# --------------------------------------------------------------------------------------

class FaceTableDataset(Dataset):
    """A ``torch`` dataset over a dataset table: item ``i`` is ``(image, label, row_index)``.

    ``label`` is the position of the row's ``target`` value in ``classes`` (default
    :func:`classes_for`); ``row_index`` is the row's index label in ``table`` (so a prediction
    can be joined back to every column, protected attributes included). ``split`` keeps only
    that split. With ``check_images`` (default) every image file must exist, or
    ``FileNotFoundError`` names the missing paths here, before any training starts.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        root: str | os.PathLike,
        target: str,
        *,
        split: str | None = None,
        classes: Sequence | None = None,
        transform: Callable | None = None,
        check_images: bool = True,
    ) -> None:
        validate_table(table, target)
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        self.root = Path(root)
        self.target = target
        self.split = split
        self.classes = list(classes) if classes is not None else classes_for(table, target)
        self.transform = transform
        self.table = table[table["split"] == split] if split is not None else table
        if len(self.table) == 0:
            warnings.warn(f"FaceTableDataset: no rows for split {split!r}", stacklevel=2)
        lookup = {_label_key(c): i for i, c in enumerate(self.classes)}
        keys = [_label_key(v) for v in self.table[target].tolist()]
        unknown = [(row, v) for row, v, k in zip(self.table.index, self.table[target], keys) if k not in lookup]
        if unknown:
            raise ValueError(
                f"target {target!r}: {len(unknown)} row(s) have values outside the classes "
                f"{self.classes} (first: row {unknown[0][0]} = {unknown[0][1]!r}); fix the labels "
                f"or pass classes="
            )
        self.labels = np.array([lookup[k] for k in keys], dtype=np.int64)
        self.paths = self.table["path"].tolist()
        self.row_indices = np.asarray(self.table.index, dtype=np.int64)
        if check_images:
            require_images(self.table, self.root)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, int, int]:
        image = read_image(self.root / self.paths[i])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[i]), int(self.row_indices[i])


def _label_key(value: Any) -> Any:
    """Compare 0/1 labels as ints whether they came as 1, 1.0, '1' or True."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return int(value)
    return value


def default_workers() -> int:
    """DataLoader workers: ``$FINEFCACE_WORKERS`` if set; else min(8, CPUs) with CUDA, 0 on CPU.

    On a CPU-only machine the main process decoding small images is as fast as workers that
    compete with training for the same cores; on a GPU machine workers keep the device fed.
    """
    env = os.environ.get("FINEFCACE_WORKERS")
    if env is not None:
        try:
            return max(0, int(env))
        except ValueError:
            raise ValueError(f"FINEFCACE_WORKERS must be an integer, got {env!r}") from None
    if torch.cuda.is_available():
        return min(8, os.cpu_count() or 1)
    return 0


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    train: bool,
    workers: int | None = None,
    pin_memory: bool | None = None,
    seed: int | None = None,
    drop_last: bool | None = None,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """A ``DataLoader`` that keeps the model fed: shuffled (seeded) for training, ordered for
    evaluation; ``workers`` (default :func:`default_workers`), pinned memory when CUDA is
    available, persistent workers. ``drop_last`` defaults to dropping only a final *training*
    batch of a single image (BatchNorm cannot train on it). Introduced in notebook 04.
    """
    workers = default_workers() if workers is None else int(workers)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    if drop_last is None:
        drop_last = train and len(dataset) % batch_size == 1
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(int(seed))
    options: dict[str, Any] = {}
    if workers > 0:
        options["persistent_workers"] = True
        options["prefetch_factor"] = prefetch_factor or 4
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
        **options,
    )
