"""Tests of finefcace/sources/duplicates.py: byte-identical images grouped by content hash, conflicting
labels reported and left out, copies kept in one split; the real UTKFace trap when ../shared is present."""

from __future__ import annotations

import shutil
import warnings

import pandas as pd
import pytest

from finefcace.sources.duplicates import (
    HASH_COLUMN,
    DuplicateImagesWarning,
    duplicate_groups,
    file_hash,
    overlap,
    resolve_duplicates,
    straddling_groups,
)
from tests.sources.fixtures import face_image


@pytest.fixture
def copies(tmp_path):
    """Six files: a.png = b.png (same labels), c.png = d.png (genders differ), e.png, f.png unique."""
    for name, seed in (("a", 1), ("c", 2), ("e", 3), ("f", 4)):
        face_image(seed=seed).save(tmp_path / f"{name}.png")
    shutil.copy(tmp_path / "a.png", tmp_path / "b.png")
    shutil.copy(tmp_path / "c.png", tmp_path / "d.png")
    table = pd.DataFrame({"path": [f"{n}.png" for n in "abcdef"], "split": "test",
                          "gender": ["Male", "Male", "Male", "Female", "Female", "Male"],
                          "race": ["A", "A", "B", "B", "C", "C"]})
    return tmp_path, table


def test_groups_and_conflicts_are_found_by_content(copies):
    root, table = copies
    assert file_hash(root / "a.png") == file_hash(root / "b.png") != file_hash(root / "c.png")
    table, report = resolve_duplicates(table, root, warn=False)
    groups = duplicate_groups(table)
    assert (report.groups, report.files_in_groups, report.conflicting) == (2, 4, 1)
    assert report.conflicting_by_column == {"gender": 1}
    assert report.examples[0]["paths"] == ["c.png", "d.png"]
    assert report.examples[0]["labels"] == ["gender=Male", "gender=Female"]
    assert len(groups) == 1  # c and d are gone; a = b remain, agreeing


def test_conflicting_copies_are_left_out_with_a_warning_or_kept_once(copies):
    root, table = copies
    with pytest.warns(DuplicateImagesWarning, match=r"2 groups of byte-identical images.*1 of them with conflicting"):
        dropped, report = resolve_duplicates(table, root, source="fixture")
    assert sorted(dropped["path"]) == ["a.png", "b.png", "e.png", "f.png"]  # copies that agree are kept
    assert report.left_out == ["c.png", "d.png"] and report.rows_left_out == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # keep_one warns too: it still reports the conflict
        with pytest.raises(DuplicateImagesWarning, match="reduced to one copy"):
            resolve_duplicates(table, root, conflicting="keep_one")
    kept, report = resolve_duplicates(table, root, conflicting="keep_one", warn=False)
    assert sorted(kept["path"]) == ["a.png", "b.png", "c.png", "e.png", "f.png"] and report.left_out == ["d.png"]
    with pytest.raises(ValueError, match="conflicting must be one of"):
        resolve_duplicates(table, root, conflicting="keep_all")


def test_straddling_groups_and_overlap_between_tables(copies):
    root, table = copies
    hashed, _ = resolve_duplicates(table, root, warn=False)
    hashed.loc[hashed["path"] == "b.png", "split"] = "train"
    leaks = straddling_groups(hashed)
    assert len(leaks) == 1 and leaks["paths"].iloc[0] == ["a.png", "b.png"]
    assert leaks["splits"].iloc[0] == ["test", "train"]
    other = root / "other"
    other.mkdir()
    shutil.copy(root / "e.png", other / "x.png")
    face_image(seed=9).save(other / "y.png")
    shared = overlap(hashed, pd.DataFrame({"path": ["x.png", "y.png"], "split": "test"}), second_root=other)
    assert shared[["first_path", "second_path"]].values.tolist() == [["e.png", "x.png"]]


def test_a_missing_file_is_named(copies):
    root, table = copies
    (root / "f.png").unlink()
    with pytest.raises(FileNotFoundError, match="f.png"):
        resolve_duplicates(table, root)


def test_real_utkface_duplicates_and_a_split_that_keeps_copies_together(realfaces_dir):
    """../shared/realfaces/utkface: 203 groups of identical files, 140 of them with conflicting labels;
    the seeded split of what remains puts no content hash in two splits."""
    from finefcace.sources.adapters import dataset_table

    with pytest.warns(DuplicateImagesWarning, match="203 groups of byte-identical images .* 140 of them"):
        table = dataset_table("utkface", realfaces_dir / "utkface", splits="seeded")
    record = table.attrs["preparation"]["duplicates"]
    assert (record["groups"], record["conflicting"], record["rows_left_out"]) == (203, 140, 287)
    assert straddling_groups(table).empty
    assert table[HASH_COLUMN].isin(set(record["left_out"])).sum() == 0
    per_hash = table.groupby(HASH_COLUMN)["split"].nunique()
    assert per_hash.max() == 1
    assert table[HASH_COLUMN].duplicated(keep=False).sum() == 413 - 287  # the 63 groups that agree, kept whole
