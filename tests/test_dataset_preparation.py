"""finefcace.dataset_preparation: the course's dataset table, made once, and its group counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from finefcace import dataset_preparation
from finefcace.parameters import ParameterError


def test_prepare_dataset_generates_once_and_regenerates_when_the_options_change(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = {"n_train": 8, "n_val": 4, "n_test": 8, "seed": 0}
    table, path = dataset_preparation.prepare_dataset("synthetic", "syn", None, options, input_size=64)
    assert path == Path("syn/labels.csv") and len(table) == 20
    stamp = path.stat().st_mtime_ns
    dataset_preparation.prepare_dataset("synthetic", "syn", None, options, input_size=64)
    assert path.stat().st_mtime_ns == stamp, "an up-to-date synthetic set must be reused, not rendered again"
    dataset_preparation.prepare_dataset("synthetic", "syn", None, {**options, "seed": 1}, input_size=64)
    assert path.stat().st_mtime_ns != stamp
    counts = dataset_preparation.group_counts(table)
    assert counts.loc["total", ("total", "")] == 20 and list(counts.index) == ["train", "val", "test", "total"]
    with pytest.raises(ParameterError, match="synthetic"):
        dataset_preparation.prepare_dataset("synthetic", "syn", None, None)


def test_real_dataset_tables_are_written_once(tmp_path, monkeypatch, realdata_dir):
    """FairFace's real label files through the adapter (labels only: no images here)."""
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    from finefcace import datasets

    frame = datasets.fairface_table(realdata_dir / "fairface", check_images=False)
    target = Path("data/tables/fairface.csv")
    frame.to_csv(target.parent.mkdir(parents=True, exist_ok=True) or target, index=False)
    table, path = dataset_preparation.prepare_dataset("fairface", "missing-root", None, None)
    assert path == target and len(table) == len(frame)
    assert set(dataset_preparation.group_counts(table).columns.get_level_values(0)) >= {"White", "Black", "total"}
    assert isinstance(table, pd.DataFrame)
