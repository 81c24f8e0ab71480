"""CelebA's release (``list_attr_celeba.txt``, ``list_eval_partition.txt``,
``img_align_celeba/``) → the dataset table: the official partition and the 40 attributes
(paper §4.1; the paper classifies 13 of them).

Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from finefcace.errors import DataError
from finefcace.sources.images import require_images
from finefcace.sources.releases import SkippedRowsWarning
from finefcace.sources.table import CELEBA_ATTRIBUTES, GENDERS

__all__ = ["LICENCE", "celeba_table", "read_celeba_attributes", "read_celeba_partition"]

#: The terms CelebA is published under (a run trained on it says so in its model card).
LICENCE = ("non-commercial research only (the CelebA agreement, Liu et al., ICCV 2015); the copyright of the "
           "images stays with their owners")


_CELEBA_SPLITS = {0: "train", 1: "val", 2: "test"}


def read_celeba_attributes(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``list_attr_celeba.txt``: line 1 the image count, line 2 the 40 names, then
    ``name v1 … v40`` with −1/1, space-padded, CRLF. Returns ``image`` + 40 int 0/1 columns.

    A count that disagrees with the rows (a truncated file) is reported in a warning; values
    other than −1/1 raise :class:`~finefcace.errors.DataError` naming the line. Introduced in notebook 01.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CelebA attribute file not found: {path}")
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        declared = handle.readline().strip()
        names = handle.readline().split()
    if not declared.isdigit() or len(names) != 40:
        raise DataError(f"{path}: expected line 1 = image count and line 2 = the 40 attribute names "
                         f"(got {declared!r} and {len(names)} names)")
    frame = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, names=["image", *names], dtype={"image": str},
                        engine="c")
    values = frame[names]
    bad = ~values.isin([-1, 1]).all(axis=1)
    if bad.any():
        lines = (np.flatnonzero(bad.to_numpy()) + 3)[:5].tolist()
        raise DataError(f"{path}: {int(bad.sum())} row(s) with values other than -1/1 (lines {lines}); "
                         f"download the file again")
    frame[names] = (values.to_numpy() > 0).astype(np.int64)
    if int(declared) != len(frame):
        warnings.warn(f"{path}: line 1 declares {int(declared)} images but the file lists {len(frame)} "
                      f"(a partial copy?)", SkippedRowsWarning, stacklevel=2)
    return frame


def read_celeba_partition(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``list_eval_partition.txt`` (``name 0|1|2``, CRLF): ``image``, ``split``.

    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CelebA partition file not found: {path}")
    frame = pd.read_csv(path, sep=r"\s+", header=None, names=["image", "partition"], dtype={"image": str},
                        engine="c")
    bad = ~frame["partition"].isin(list(_CELEBA_SPLITS))
    if bad.any():
        lines = (np.flatnonzero(bad.to_numpy()) + 1)[:5].tolist()
        raise DataError(f"{path}: partition values must be 0, 1 or 2 (lines {lines})")
    frame["split"] = frame.pop("partition").map(_CELEBA_SPLITS)
    return frame


def celeba_table(
    root: str | os.PathLike,
    *,
    attributes: str = "list_attr_celeba.txt",
    partition: str = "list_eval_partition.txt",
    images: str = "img_align_celeba",
    check_images: bool = True,
) -> pd.DataFrame:
    """CelebA as a dataset table: official partition (train 162,770 / val 19,867 / test
    19,962), the 40 attributes as 0/1 columns named as CelebA names them (the paper's 13 are
    :data:`~finefcace.sources.table.CELEBA_ATTRIBUTES`), and ``gender`` from ``Male`` (protected
    attribute, and the gender target in cross-dataset tests). Images listed in the partition
    file but absent from the attribute file are left out with a warning.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    root = Path(root)
    labels = read_celeba_attributes(root / attributes)
    splits = read_celeba_partition(root / partition)
    table = labels.merge(splits, on="image", how="left", validate="one_to_one")
    missing = table["split"].isna()
    if missing.any():
        raise DataError(f"{root / partition}: {int(missing.sum())} image(s) of the attribute file have no "
                         f"partition (first: {table.loc[missing, 'image'].head(5).tolist()})")
    unlabelled = len(splits) - len(table)
    if unlabelled:
        warnings.warn(f"CelebA: {unlabelled} image(s) of the partition file have no attributes and are left out",
                      SkippedRowsWarning, stacklevel=2)
    prefix = f"{images.strip('/')}/" if images else ""
    table.insert(0, "path", prefix + table.pop("image"))
    table.insert(1, "split", table.pop("split"))
    table.insert(2, "gender", np.where(table["Male"] == 1, GENDERS[1], GENDERS[0]))
    table.attrs["dataset"] = "celeba"
    absent = [a for a in (*CELEBA_ATTRIBUTES, "Male") if a not in table.columns]
    if absent:
        raise DataError(f"{root / attributes}: attribute(s) {absent} missing from the header")
    if check_images:
        require_images(table, root)
    return table
