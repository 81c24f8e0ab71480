"""Seeded splits of a dataset table: the splits a release does not ship, and a smaller
training set.

- :func:`stratified_validation_split`: FairFace's validation split (10 % of ``train``,
  race × gender stratified; the release's ``val`` is the test split).
- :func:`seeded_split`: train / val / test for a dataset with no official split (UTKFace) or
  only part of one (a FairFace copy without its ``val`` files), stratified by protected group ×
  target, keeping every group of identical files (:mod:`finefcace.sources.duplicates`) in one
  split.
- :func:`limit_split`: a stratified subset of one split (a training set sized for a CPU).

:data:`SPLIT_PROTOCOLS` names the three ways an adapter's table can be split
(:func:`finefcace.sources.preparation.finish_table`). Introduced in the book in
``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from finefcace.errors import UserError

__all__ = ["SPLIT_PROTOCOLS", "limit_split", "seeded_split", "stratified_validation_split"]

#: ``official``: the release's own split; ``seeded``: :func:`seeded_split` of every row;
#: ``test``: every row is ``test`` (the dataset serves whole as a cross-dataset test set).
SPLIT_PROTOCOLS: tuple[str, ...] = ("official", "seeded", "test")


def stratified_validation_split(
    groups: pd.DataFrame, fraction: float = 0.1, seed: int = 0
) -> np.ndarray:
    """Boolean mask choosing ``round(fraction·n_g)`` rows of every group g (rows of ``groups``
    with equal values), reproducibly from ``seed``. Used for FairFace's validation split
    (10 % of ``train``, race × gender stratified). Introduced in notebook 01.
    """
    if not 0.0 <= fraction < 1.0:
        raise UserError(f"validation fraction must be in [0, 1), got {fraction} (e.g. 0.1: 10 % of train)")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(groups), dtype=bool)
    keys = groups.groupby(list(groups.columns), sort=True, dropna=False).ngroup().to_numpy()
    for key in range(keys.max() + 1 if len(keys) else 0):
        members = np.flatnonzero(keys == key)
        chosen = rng.permutation(members)[: int(round(fraction * len(members)))]
        mask[chosen] = True
    return mask


def _units(strata: pd.DataFrame, units: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """(unit id per row, stratum id per unit): a unit is a set of rows that must share a split
    (copies of one photo); its stratum is that of its first row."""
    unit_of_row = (pd.factorize(pd.Series(list(units)), sort=True)[0] if units is not None
                   else np.arange(len(strata)))
    if len(unit_of_row) != len(strata):
        raise ValueError(f"units has {len(unit_of_row)} entries for {len(strata)} rows")
    stratum_of_row = strata.groupby(list(strata.columns), sort=True, dropna=False).ngroup().to_numpy()
    first_row = pd.Series(np.arange(len(strata))).groupby(unit_of_row).first().to_numpy()
    return unit_of_row, stratum_of_row[first_row]


def seeded_split(
    strata: pd.DataFrame,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    units: Sequence | None = None,
) -> np.ndarray:
    """``train``/``val``/``test`` for every row, stratified by the columns of ``strata``
    (e.g. race, gender and the target): in each stratum, ``round(test_fraction·n)`` of its n
    units go to ``test`` and ``round(val_fraction·n)`` to ``val``, chosen reproducibly from
    ``seed``. A *unit* is a set of rows with equal ``units`` values (copies of one photo: their
    content hash), which always share a split; by default every row is its own unit.
    Book: ``notebooks/01_dataset_preparation.ipynb``.
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise UserError(f"val_fraction and test_fraction must be in [0, 1) with a sum below 1 (a training split "
                         f"must remain), got {val_fraction} and {test_fraction}")
    unit_of_row, stratum_of_unit = _units(strata, units)
    rng = np.random.default_rng(seed)
    split_of_unit = np.full(len(stratum_of_unit), "train", dtype=object)
    for stratum in range(stratum_of_unit.max() + 1 if len(stratum_of_unit) else 0):
        members = rng.permutation(np.flatnonzero(stratum_of_unit == stratum))
        n_test = int(round(test_fraction * len(members)))
        n_val = int(round(val_fraction * len(members)))
        split_of_unit[members[:n_test]] = "test"
        split_of_unit[members[n_test:n_test + n_val]] = "val"
    return split_of_unit[unit_of_row]


def limit_split(
    table: pd.DataFrame,
    split: str,
    size: int,
    strata: Sequence[str],
    *,
    seed: int = 0,
    units: str | None = None,
) -> pd.DataFrame:
    """``table`` with split ``split`` cut to about ``size`` rows (other splits untouched), the
    strata (columns ``strata``) kept in proportion (largest remainders; whole units of column
    ``units`` are kept or left out together, so the count can exceed ``size`` by a few copies).
    A split already at most ``size`` rows is returned unchanged. Book: ``notebooks/01_dataset_preparation.ipynb``.
    """
    if size < 1:
        raise UserError(f"the size of split {split!r} must be at least 1, got {size}")
    part = table[table["split"] == split]
    if len(part) <= size:
        return table
    unit_of_row, stratum_of_unit = _units(part[list(strata)], part[units].tolist() if units else None)
    n_units = len(stratum_of_unit)
    target = size * n_units / len(part)  # units to keep
    counts = np.bincount(stratum_of_unit)
    quotas = counts * target / n_units
    keep = np.floor(quotas).astype(int)
    order = np.argsort(-(quotas - keep), kind="stable")
    keep[order[: int(round(target)) - keep.sum()]] += 1
    rng = np.random.default_rng(seed)
    kept_units = np.concatenate([rng.permutation(np.flatnonzero(stratum_of_unit == s))[:keep[s]]
                                 for s in range(len(counts))]) if len(counts) else np.zeros(0, dtype=int)
    dropped = part.index[~np.isin(unit_of_row, kept_units)]
    out = table.drop(index=dropped)
    out.attrs = dict(table.attrs)
    return out
