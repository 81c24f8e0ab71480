"""Seeded splits of a dataset table: the validation split a release does not ship.

Introduced in the book in ``notebooks/01_dataset_preparation.ipynb`` (FairFace's validation
split: 10 % of ``train``, race × gender stratified).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finefcace.errors import UserError

__all__ = ["stratified_validation_split"]


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
