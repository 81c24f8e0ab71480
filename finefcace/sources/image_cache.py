"""Every image a run reads, decoded once, before the first batch: the decoded-image cache.

A real photograph is a JPEG of a few hundred pixels; decoding and resizing it costs about as
much as a small model's forward pass on it at 64 px, every epoch again. So each image of a
table is decoded once (:func:`finefcace.sources.images.read_image`: RGB, upright), resized to
the square side the transforms start with (:func:`finefcace.sources.transforms.square_resize`)
and stored in one ``uint8`` array on disk (``<folder>/<key>.npy``, memory-mapped when read);
the transforms then start from that array and produce exactly the tensors they would produce
from the files (resizing to the size an image already has is a copy). The key covers the
image root, the side and every file's path, size and modification time: a changed file or
another table makes another cache.

The same pass is the **bad-image policy**: *refuse before training*. Every image a run will
read is decoded here before its first batch; an image that cannot be used (truncated,
corrupt, empty, above the pixel limit, below the minimum side) stops the run before training
with :class:`UnusableImagesError` listing every such file with its reason and the fix
(``python -m data_prep <dataset> --decode --drop-bad``). A run therefore never meets a bad
file mid-epoch, and nothing is dropped silently. When the decoded images would take more than
``max_bytes`` (large images of a large dataset, e.g. 448 px on a GPU), only the check is made
and remembered (``<key>.checked.json``); the images are then decoded from the files every
epoch, as before. Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``
(measured in ``benchmarks/data_loading.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from finefcace import outputs
from finefcace.sources.images import ImageReadError, read_image
from finefcace.sources.transforms import resize_size, square_resize

__all__ = ["CACHE_MAX_BYTES", "DecodedImages", "UnusableImagesError", "decode_images"]

logger = logging.getLogger(__name__)

#: Largest decoded-image array stored (4 GiB): above it the images are only checked.
CACHE_MAX_BYTES = 4 * 1024**3
#: Bumped when what the cache stores changes (the resize, the reading of files).
_CACHE_VERSION = 1


class UnusableImagesError(ImageReadError):
    """Images of a table cannot be used; the message lists each with its reason and the fix."""


class DecodedImages:
    """A table's images decoded at one square side: :meth:`image` returns one as RGB ``PIL``."""

    def __init__(self, paths: list[str], array: np.ndarray, side: int, file: Path | None = None) -> None:
        self.paths = paths
        self.array = array
        self.side = side
        self.file = file
        self.index = {path: i for i, path in enumerate(paths)}

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, path: str) -> bool:
        return path in self.index

    def __getstate__(self) -> dict:
        """Loader workers started by spawning reopen the array file instead of receiving a copy."""
        state = dict(self.__dict__)
        if self.file is not None:
            state["array"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.array is None:
            self.array = np.load(self.file, mmap_mode="r")

    def image(self, path: str) -> Image.Image:
        """The decoded, resized image of ``path`` (a copy: the transforms may change it)."""
        return Image.fromarray(np.array(self.array[self.index[path]]), "RGB")


def _key(paths: list[str], root: Path, side: int) -> str:
    digest = hashlib.sha256(json.dumps({"version": _CACHE_VERSION, "root": str(root.resolve()), "side": side},
                                       sort_keys=True).encode())
    for path in paths:
        stat = (root / path).stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


#: What a refusal says was stopped, by the purpose the images were decoded for.
_STOPPED = {
    "training": "nothing was trained (policy: every image is decoded before the first batch, and a bad one stops "
                "the run there)",
    "prediction": "nothing was predicted (every image is decoded before the first prediction, and a bad one stops "
                  "the command there)",
}


def _refusal(failures: list[tuple[str, ImageReadError]], total: int, root: Path,
             purpose: str = "training") -> UnusableImagesError:
    kinds: dict[str, int] = {}
    for _, error in failures:
        kinds[error.problem] = kinds.get(error.problem, 0) + 1
    shown = "\n".join(f"  {path}: {error}" for path, error in failures[:10])
    more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
    return UnusableImagesError(
        f"{len(failures)} of {total} images under {root} cannot be used ({kinds}); {_STOPPED[purpose]}:\n"
        f"{shown}{more}\nLeave them out: `python -m data_prep <dataset> --root {root} --decode --drop-bad` writes "
        f"the table without them (and lists them in <dataset>_problems.csv); or replace the files.")


def decode_images(
    table: pd.DataFrame,
    root: str | os.PathLike,
    size: int,
    folder: str | os.PathLike,
    *,
    threads: int = 4,
    max_bytes: int = CACHE_MAX_BYTES,
    purpose: str = "training",
) -> DecodedImages | None:
    """Decode every image of ``table`` (column ``path``, relative to ``root``) once, for the
    transforms of input ``size``: read back from ``folder`` when cached, else decoded with
    ``threads`` threads, checked and stored. Returns the :class:`DecodedImages`, or ``None``
    when they would exceed ``max_bytes`` (then only checked, and the check remembered).
    Raises :class:`UnusableImagesError` listing every unusable image (before any training or
    prediction: ``purpose`` is ``training`` or ``prediction``, which the message names).
    Book: ``notebooks/01_dataset_preparation.ipynb``."""
    root, folder = Path(root), Path(folder)
    paths = list(dict.fromkeys(table["path"].tolist()))
    side = resize_size(size)
    missing = [p for p in paths if not (root / p).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(paths)} images of the table are missing under {root} "
                                f"(first: {missing[:5]}); finish the download, or drop those rows (python -m "
                                f"data_prep <dataset> --root {root} lists them and --drop-bad leaves them out)")
    key = _key(paths, root, side)
    store = len(paths) * side * side * 3 <= max_bytes
    array_file, checked_file = folder / f"{key}.npy", folder / f"{key}.checked.json"
    if store and array_file.is_file():
        return DecodedImages(paths, np.load(array_file, mmap_mode="r"), side, array_file)
    if not store and checked_file.is_file():
        return None
    resize = square_resize(size)
    array = np.zeros((len(paths), side, side, 3), dtype=np.uint8) if store else None
    failures: list[tuple[str, ImageReadError]] = []

    def decode(i: int) -> None:
        try:
            image = resize(read_image(root / paths[i]))
        except ImageReadError as error:
            failures.append((paths[i], error))
            return
        if array is not None:
            array[i] = np.asarray(image)

    logger.info("decoding %d images under %s once (%d px%s)", len(paths), root, side,
                f", cached in {folder}" if store else "; too many to cache: checked only")
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(decode, range(len(paths))))
    if failures:
        failures.sort()
        raise _refusal(failures, len(paths), root, purpose)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if array is not None:
            partial = folder / f"{key}.npy.{os.getpid()}.partial"  # two runs decoding at once write apart
            with open(partial, "wb") as handle:
                np.save(handle, array)
            os.replace(partial, array_file)  # never leave a half-written cache behind
        else:
            outputs.write_json(checked_file, {"root": str(root), "images": len(paths), "side": side}, indent=None)
    except OSError as error:  # a read-only place: the images stay in memory for this run
        logger.warning("could not store the decoded images in %s (%s): they are kept in memory for this run only",
                       folder, error)
        return DecodedImages(paths, array, side) if array is not None else None
    return DecodedImages(paths, np.load(array_file, mmap_mode="r"), side, array_file) if array is not None else None
