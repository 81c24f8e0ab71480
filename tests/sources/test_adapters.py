"""Tests of finefcace/sources/adapters.py: the dispatch by dataset name."""

from __future__ import annotations

import pytest

from finefcace.sources.adapters import dataset_table
from tests.sources.layouts import fairface_layout, fairface_rows


def test_dataset_table_dispatch(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        dataset_table("imagenet", tmp_path)
    root = fairface_layout(tmp_path / "ff", fairface_rows("train", 7), fairface_rows("val", 2))
    assert len(dataset_table("fairface", root)) == 9
