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
