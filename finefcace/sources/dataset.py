"""The ``torch`` dataset over a dataset table, and the ``DataLoader`` that feeds a model.

Introduced in the book in ``notebooks/01_dataset_preparation.ipynb`` (the dataset) and
``notebooks/04_training.ipynb`` (the loader).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from finefcace.errors import DataError
from finefcace.sources.images import read_image, require_images
from finefcace.sources.table import SPLITS, classes_for, validate_table

if TYPE_CHECKING:  # pragma: no cover
    from finefcace.sources.image_cache import DecodedImages


class FaceTableDataset(Dataset):
    """A ``torch`` dataset over a dataset table: item ``i`` is ``(image, label, row_index)``.

    ``label`` is the position of the row's ``target`` value in ``classes`` (default
    :func:`classes_for`); ``row_index`` is the row's index label in ``table`` (so a prediction
    can be joined back to every column, protected attributes included). ``split`` keeps only
    that split. With ``check_images`` (default) every image file must exist, or
    ``FileNotFoundError`` names the missing paths here, before any training starts.
    ``images``: the table's images decoded once (:func:`finefcace.sources.image_cache.decode_images`
    at the transform's input size; settable later as the ``images`` attribute) — then no file is
    read per item. Introduced in ``notebooks/01_dataset_preparation.ipynb``.
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
        images: "DecodedImages | None" = None,
    ) -> None:
        validate_table(table, target)
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        self.root = Path(root)
        self.target = target
        self.split = split
        self.classes = list(classes) if classes is not None else classes_for(table, target)
        self.transform = transform
        self.images = images
        self.table = table[table["split"] == split] if split is not None else table
        if len(self.table) == 0:
            warnings.warn(f"FaceTableDataset: no rows for split {split!r}", stacklevel=2)
        lookup = {_label_key(c): i for i, c in enumerate(self.classes)}
        keys = [_label_key(v) for v in self.table[target].tolist()]
        unknown = [(row, v) for row, v, k in zip(self.table.index, self.table[target], keys) if k not in lookup]
        if unknown:
            raise DataError(
                f"target {target!r}: {len(unknown)} row(s) have values outside the classes "
                f"{self.classes} (first: row {unknown[0][0]} = {unknown[0][1]!r}): a model cannot predict a class "
                f"it was not trained on; fix or drop those rows (or pass classes=)"
            )
        self.labels = np.array([lookup[k] for k in keys], dtype=np.int64)
        self.paths = self.table["path"].tolist()
        self.row_indices = np.asarray(self.table.index, dtype=np.int64)
        if check_images:
            require_images(self.table, self.root)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, int, int]:
        path = self.paths[i]
        image = self.images.image(path) if self.images is not None else read_image(self.root / path)
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
