"""Tests of finefcace/sources/splits.py: the seeded stratified validation split."""

from __future__ import annotations

import pandas as pd
import pytest

from finefcace.sources.splits import stratified_validation_split


def test_stratified_split_is_exact_per_group():
    groups = pd.DataFrame({"race": ["a"] * 50 + ["b"] * 30, "gender": (["M", "F"] * 40)})
    mask = stratified_validation_split(groups, 0.1, seed=3)
    assert mask.sum() == 8
    assert groups[mask].groupby(["race", "gender"]).size().to_dict() == {("a", "F"): 2, ("a", "M"): 2,
                                                                          ("b", "F"): 2, ("b", "M"): 2}
    with pytest.raises(ValueError, match="fraction"):
        stratified_validation_split(groups, 1.5)


def test_seeded_split_is_stratified_seeded_and_keeps_units_together():
    import numpy as np

    from finefcace.sources.splits import seeded_split

    strata = pd.DataFrame({"race": ["a"] * 60 + ["b"] * 40, "gender": ["M", "F"] * 50})
    splits = seeded_split(strata, val_fraction=0.1, test_fraction=0.2, seed=1)
    counts = pd.crosstab([strata["race"], strata["gender"]], splits)
    assert counts["test"].tolist() == [6, 6, 4, 4] and counts["val"].tolist() == [3, 3, 2, 2]
    assert (seeded_split(strata, seed=1) == splits).all() and not (seeded_split(strata, seed=2) == splits).all()
    units = np.repeat(np.arange(50), 2)  # rows 2k and 2k+1 are copies of one photo (same stratum here)
    strata_units = pd.DataFrame({"race": np.repeat(["a", "b"], 50), "gender": "M"})
    together = seeded_split(strata_units, units=units, seed=0)
    assert (together[0::2] == together[1::2]).all()
    # 25 units per stratum: round(0.2·25) = 5 to test, round(0.1·25) = 2 to val (counted in units, not rows)
    assert pd.Series(together).value_counts().to_dict() == {"train": 72, "test": 20, "val": 8}
    with pytest.raises(ValueError, match="sum below 1"):
        seeded_split(strata, val_fraction=0.5, test_fraction=0.5)


def test_limit_split_keeps_strata_in_proportion_and_other_splits_whole():
    from finefcace.sources.splits import limit_split

    table = pd.DataFrame({"path": [f"{i}.png" for i in range(130)], "split": ["train"] * 100 + ["test"] * 30,
                          "race": (["a"] * 75 + ["b"] * 25) + ["a"] * 30, "gender": "M"})
    small = limit_split(table, "train", 40, ["race", "gender"], seed=0)
    kept = small[small["split"] == "train"]
    assert len(kept) == 40 and kept["race"].value_counts().to_dict() == {"a": 30, "b": 10}
    assert (small["split"] == "test").sum() == 30
    assert limit_split(table, "train", 500, ["race"]) is table
    with pytest.raises(ValueError, match="at least 1"):
        limit_split(table, "train", 0, ["race"])


def test_the_seed_chooses_the_rows_reproducibly():
    """The same seed picks the same validation rows; another seed picks others (a split that
    ignored its seed would pass the per-group counts above)."""
    groups = pd.DataFrame({"race": ["a"] * 50 + ["b"] * 30, "gender": (["M", "F"] * 40)})
    first = stratified_validation_split(groups, 0.1, seed=3)
    assert (first == stratified_validation_split(groups, 0.1, seed=3)).all()
    assert any((first != stratified_validation_split(groups, 0.1, seed=seed)).any() for seed in (0, 1, 2))
