"""The adapters: each dataset's official layout → the one dataset table
(:mod:`finefcace.sources.table`), dispatched by dataset name, and made ready to use.

Each adapter reads the files exactly as their publishers ship them and returns the table
(``path`` relative to ``root``, ``split``, targets, protected attributes):
:func:`adapter_table`. :func:`dataset_table` then finishes it
(:func:`finefcace.sources.preparation.finish_table`): byte-identical images grouped by
content hash and conflicting ones left out, the split protocol applied — ``official`` (the
release's split: FairFace, LFWA+, CelebA), ``seeded`` (train / val / test stratified by
protected group × target; any dataset, the one way to train on UTKFace or on a FairFace copy
without its ``val`` files) or ``test`` (every row ``test``: the dataset serves whole as a
cross-dataset test set; UTKFace's default, its role in the paper). With
``check_images=True`` (default) every image of the table must exist, or
``FileNotFoundError`` names the missing paths; ``check_images=False`` reads labels only (no
duplicate check). The synthetic faces are made by :mod:`finefcace.sources.synthetic`.

Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import inspect
import os

import pandas as pd

from finefcace.errors import DataError
from finefcace.sources.celeba import celeba_table
from finefcace.sources.fairface import fairface_table
from finefcace.sources.lfwa import lfwa_table
from finefcace.sources.table import check_paths
from finefcace.sources.preparation import finish_table
from finefcace.sources.splits import SPLIT_PROTOCOLS
from finefcace.sources.utkface import utkface_table

__all__ = ["DATASETS", "DEFAULT_SPLITS", "adapter_table", "dataset_table"]


#: Adapter per dataset name (``data_prep`` and notebooks dispatch on it).
DATASETS = {"fairface": fairface_table, "utkface": utkface_table, "lfwa": lfwa_table, "celeba": celeba_table}
#: The split protocol of each dataset when none is asked for (UTKFace has no official split).
DEFAULT_SPLITS = {"fairface": "official", "utkface": "test", "lfwa": "official", "celeba": "official"}


def _adapter(name: str):
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {sorted(DATASETS)} (synthetic data is made by "
                         f"finefcace.sources.synthetic.generate_synthetic)") from None


def adapter_table(name: str, root: str | os.PathLike, *, splits: str | None = None, **options) -> pd.DataFrame:
    """The table of dataset ``name`` (one of :data:`DATASETS`) exactly as its adapter reads the
    official layout, ready for the split protocol ``splits`` (default :data:`DEFAULT_SPLITS`):
    for ``seeded`` and ``test`` a FairFace copy may lack its ``val`` files."""
    adapter = _adapter(name)
    splits = splits or DEFAULT_SPLITS[name]
    if splits not in SPLIT_PROTOCOLS:
        raise DataError(f"splits must be one of {SPLIT_PROTOCOLS}, got {splits!r}")
    if splits == "official" and name == "utkface":
        raise DataError("UTKFace has no official split: use splits='seeded' (train / val / test, stratified by "
                         "race x gender x target) to train on it, or splits='test' to test on all of it")
    if "official_split" in inspect.signature(adapter).parameters:
        options.setdefault("official_split", splits == "official")
    table = adapter(root, **options)
    check_paths(table, f"the {name} label files under {os.fspath(root)}")
    return table


def dataset_table(
    name: str,
    root: str | os.PathLike,
    *,
    splits: str | None = None,
    target: str = "gender",
    duplicates: str = "drop",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_train: int | None = None,
    check_images: bool = True,
    **options,
) -> pd.DataFrame:
    """The table of dataset ``name`` from its official layout under ``root``, finished: split
    by protocol ``splits`` (default :data:`DEFAULT_SPLITS`; ``seeded`` uses ``target``,
    ``val_fraction``, ``test_fraction`` and ``seed``), duplicates resolved (``duplicates``:
    ``drop`` or ``keep_one`` for conflicting groups), the training split cut to ``max_train``.
    ``options`` go to the adapter (e.g. ``images=``). Book: ``notebooks/01_dataset_preparation.ipynb``."""
    adapter = _adapter(name)
    if "val_fraction" in inspect.signature(adapter).parameters:  # FairFace's official validation split
        options.update(val_fraction=val_fraction, seed=seed)
    table = adapter_table(name, root, splits=splits, check_images=check_images, **options)
    return finish_table(table, root if check_images else None, splits=splits or DEFAULT_SPLITS[name],
                        target=target, duplicates=duplicates, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed, max_train=max_train)
