"""An adapter's table made ready to train or test on: duplicates resolved, the split protocol
applied, the training set optionally cut to size.

:func:`finish_table` is the one place these happen, for every dataset (the adapters by name,
:func:`finefcace.sources.adapters.dataset_table`; ``python -m data_prep``; the course's
chapter 1). The split protocols (:data:`~finefcace.sources.splits.SPLIT_PROTOCOLS`):
``official`` keeps the release's split, ``seeded`` splits every row train / val / test
stratified by protected group × target with copies of one photo kept together, ``test`` makes
the whole dataset a cross-dataset test set. What was done is recorded in
``table.attrs["preparation"]`` (``data_prep`` writes it into its report). Introduced in the
book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import pandas as pd

from finefcace.errors import DataError
from finefcace.metrics import protected_columns
from finefcace.sources.duplicates import HASH_COLUMN, DuplicateImagesWarning, resolve_duplicates, straddling_groups
from finefcace.sources.splits import SPLIT_PROTOCOLS, limit_split, seeded_split

__all__ = ["finish_table", "split_strata"]


def split_strata(table: pd.DataFrame, target: str) -> list[str]:
    """The columns a seeded split is stratified by: the protected ones and the target."""
    if target not in table.columns:
        raise DataError(f"target {target!r} is not a column of the table (columns: {list(table.columns)}); a "
                         f"seeded split is stratified by protected group x target")
    return list(dict.fromkeys([*protected_columns(table), target]))


def finish_table(
    table: pd.DataFrame,
    root: str | os.PathLike | None,
    *,
    splits: str = "official",
    target: str = "gender",
    duplicates: str = "drop",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_train: int | None = None,
    threads: int = 4,
) -> pd.DataFrame:
    """An adapter's table, ready: byte-identical images grouped by content hash
    (:func:`finefcace.sources.duplicates.resolve_duplicates`; conflicting groups left out, or
    one copy kept with ``duplicates="keep_one"``; skipped when ``root`` is None, i.e. labels
    only), then split by protocol ``splits``, then the training split cut to ``max_train``
    rows (stratified; :func:`finefcace.sources.splits.limit_split`). With ``official``,
    copies that the release itself puts in two splits are reported in a warning (a leak of
    the release's protocol, kept as published). Book: ``notebooks/01_dataset_preparation.ipynb``.
    """
    if splits not in SPLIT_PROTOCOLS:
        raise DataError(f"splits must be one of {SPLIT_PROTOCOLS}, got {splits!r}")
    attrs = dict(table.attrs)
    source = attrs.get("dataset", "dataset")
    record: dict[str, Any] = {"splits": splits, "seed": seed}
    if root is not None:
        table, report = resolve_duplicates(table, root, conflicting=duplicates, threads=threads, source=source)
        record["duplicates"] = report.to_dict()
        record["duplicates_message"] = report.message(source)
    else:
        record["duplicates"] = None
        record["duplicates_message"] = "not checked (labels only: the images were not read)"
    table = table.copy()
    if splits == "test":
        table["split"] = "test"
    elif splits == "seeded":
        strata = split_strata(table, target)
        units = table[HASH_COLUMN].tolist() if HASH_COLUMN in table.columns else None
        table["split"] = seeded_split(table[strata], val_fraction=val_fraction, test_fraction=test_fraction,
                                      seed=seed, units=units)
        record.update(target=target, strata=strata, val_fraction=val_fraction, test_fraction=test_fraction)
    if max_train is not None:
        before = int((table["split"] == "train").sum())
        strata = split_strata(table, target)
        table = limit_split(table, "train", max_train, strata, seed=seed,
                            units=HASH_COLUMN if HASH_COLUMN in table.columns else None)
        record.update(max_train=max_train, train_rows_before_limit=before,
                      train_rows=int((table["split"] == "train").sum()))
    if HASH_COLUMN in table.columns:
        leaks = straddling_groups(table)
        record["groups_in_two_splits"] = len(leaks)
        if len(leaks) and splits == "official":
            shown = "; ".join(f"{' = '.join(p)} ({', '.join(s)})" for p, s in zip(leaks["paths"], leaks["splits"]))
            warnings.warn(f"{source}: the official split puts {len(leaks)} group(s) of byte-identical images in "
                          f"two splits (a leak of the published protocol, kept as published; splits='seeded' keeps "
                          f"copies together): {shown[:600]}", DuplicateImagesWarning, stacklevel=2)
    table = table.reset_index(drop=True)
    table.attrs = {**attrs, "preparation": record}
    return table
