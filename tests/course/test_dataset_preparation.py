"""finefcace.course.dataset_preparation: the course's dataset table, made once, and its group counts, the
image grid of a real dataset's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from finefcace.course import dataset_preparation
from finefcace.course.parameters import ParameterError


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
    from finefcace.sources.fairface import fairface_table

    frame = fairface_table(realdata_dir / "fairface", check_images=False)
    target = Path("data/tables/fairface.csv")
    frame.to_csv(target.parent.mkdir(parents=True, exist_ok=True) or target, index=False)
    table, path = dataset_preparation.prepare_dataset("fairface", "missing-root", None, None)
    assert path == target and len(table) == len(frame)
    assert set(dataset_preparation.group_counts(table).columns.get_level_values(0)) >= {"White", "Black", "total"}
    assert isinstance(table, pd.DataFrame)


def test_table_montage_has_a_row_per_protected_group(tmp_path):
    import pandas as pd
    from PIL import Image

    rows = []
    for i, (race, gender) in enumerate([("A", "Female"), ("A", "Male"), ("B", "Female"), ("B", "Male")] * 2):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
        rows.append({"path": f"{i}.png", "split": "test", "race": race, "gender": gender})
    figure = dataset_preparation.table_montage(pd.DataFrame(rows), tmp_path, per_group=3, size=8, title="t")
    assert len(figure.axes) == 4 * 3
    assert [ax.get_ylabel() for ax in figure.axes[::3]] == ["A / Female", "A / Male", "B / Female", "B / Male"]
    from finefcace.plots import MIN_TEXT_PT, alt_text, smallest_text_as_shown

    wide = dataset_preparation.table_montage(pd.DataFrame(rows), tmp_path, per_group=6, size=8, title="UTKFace")
    assert smallest_text_as_shown(wide)[0] >= MIN_TEXT_PT  # six a row, as chapter 1 shows a real dataset
    assert alt_text(wide).startswith("Photographs of the test split, 6 per protected group (race × gender)")


def test_a_real_table_is_split_by_the_options_remade_when_they_change_and_cross_tables_are_whole(tmp_path, monkeypatch):
    import json

    from tests.sources.layouts import write_jpg

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "utk" / "UTKFace"
    for i in range(80):  # 8 per race x gender stratum
        write_jpg(folder / f"{20 + i}_{i % 2}_{i % 5}_2017011{i:04d}.jpg.chip.jpg")
    options = {"splits": "seeded", "seed": 0, "test_fraction": 0.25}
    table, path = dataset_preparation.prepare_dataset("utkface", "utk", "data/tables/utk.csv", None, options=options)
    assert path == Path("data/tables/utk.csv") and set(table["split"]) == {"train", "val", "test"}
    note = json.loads(Path("data/tables/utk.source.json").read_text())
    assert note["options"] == {**options, "target": "gender"} and note["root"] == str((tmp_path / "utk").resolve())
    stamp = path.stat().st_mtime_ns
    dataset_preparation.prepare_dataset("utkface", "utk", "data/tables/utk.csv", None, options=options)
    assert path.stat().st_mtime_ns == stamp, "the same download and options: the table is read back"
    again, _ = dataset_preparation.prepare_dataset("utkface", "utk", "data/tables/utk.csv", None,
                                                   options={**options, "seed": 1})
    assert path.stat().st_mtime_ns != stamp and not again["split"].equals(table["split"])
    cross, cross_path = dataset_preparation.prepare_dataset("utkface", "utk", cross=True)
    assert cross_path == dataset_preparation.cross_table_location("utkface") == Path("data/tables/cross/utkface.csv")
    assert set(cross["split"]) == {"test"} and len(cross) == 80
