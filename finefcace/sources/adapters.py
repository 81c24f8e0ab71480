"""The adapters: each dataset's official layout → the one dataset table
(:mod:`finefcace.sources.table`), dispatched by dataset name.

Each adapter reads the files exactly as their publishers ship them (spec/data.md) and returns
the table (``path`` relative to ``root``, ``split``, targets, protected attributes). With
``check_images=True`` (default) every image of the table must exist, or
``FileNotFoundError`` names the missing paths; ``check_images=False`` reads labels only (e.g.
to inspect label files without images). The synthetic faces are made by
:mod:`finefcace.sources.synthetic`.

Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os

import pandas as pd

from finefcace.errors import DataError
from finefcace.sources.celeba import celeba_table
from finefcace.sources.fairface import fairface_table
from finefcace.sources.lfwa import lfwa_table
from finefcace.sources.table import check_paths
from finefcace.sources.utkface import utkface_table

__all__ = ["DATASETS", "dataset_table"]


#: Adapter per dataset name (``data_prep`` and notebooks dispatch on it).
DATASETS = {"fairface": fairface_table, "utkface": utkface_table, "lfwa": lfwa_table, "celeba": celeba_table}


def dataset_table(name: str, root: str | os.PathLike, **options) -> pd.DataFrame:
    """The table of dataset ``name`` (one of :data:`DATASETS`) from its official layout."""
    try:
        adapter = DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {sorted(DATASETS)} (synthetic data is made by "
                         f"finefcace.sources.synthetic.generate_synthetic)") from None
    table = adapter(root, **options)
    check_paths(table, f"the {name} label files under {os.fspath(root)}")
    return table
