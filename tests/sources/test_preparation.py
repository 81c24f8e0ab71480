"""Tests of finefcace/sources/preparation.py and the split protocols of the adapters
(finefcace/sources/adapters.py): official, seeded, test; a partial FairFace copy; UTKFace."""

from __future__ import annotations

import pytest

from finefcace.sources.adapters import dataset_table
from finefcace.sources.duplicates import HASH_COLUMN, straddling_groups
from tests.sources.layouts import fairface_layout, fairface_rows, write_jpg


def test_a_fairface_copy_without_val_files_is_refused_officially_and_split_on_request(tmp_path):
    root = fairface_layout(tmp_path / "ff", fairface_rows("train", 60), [])
    (root / "fairface_label_val.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"fairface_label_val.csv.*splits='seeded'"):
        dataset_table("fairface", root)
    seeded = dataset_table("fairface", root, splits="seeded", val_fraction=0.2, test_fraction=0.2, seed=3)
    assert set(seeded["split"]) == {"train", "val", "test"} and len(seeded) == 60
    assert seeded.attrs["preparation"]["strata"] == ["race", "gender"]
    whole = dataset_table("fairface", root, splits="test")
    assert set(whole["split"]) == {"test"} and len(whole) == 60 and HASH_COLUMN in whole.columns


def test_utkface_has_no_official_split_and_trains_on_a_seeded_one(tmp_path):
    folder = tmp_path / "utk" / "UTKFace"
    for i in range(40):
        write_jpg(folder / f"{20 + i}_{i % 2}_{i % 5}_2017011{i:04d}.jpg.chip.jpg")
    with pytest.raises(ValueError, match="UTKFace has no official split"):
        dataset_table("utkface", tmp_path / "utk", splits="official")
    assert set(dataset_table("utkface", tmp_path / "utk")["split"]) == {"test"}  # its paper role by default
    table = dataset_table("utkface", tmp_path / "utk", splits="seeded", max_train=10)
    assert (table["split"] == "train").sum() == 10
    record = table.attrs["preparation"]
    assert record["train_rows_before_limit"] > 10 and record["groups_in_two_splits"] == 0
    with pytest.raises(ValueError, match="splits must be one of"):
        dataset_table("utkface", tmp_path / "utk", splits="random")
    with pytest.raises(ValueError, match="target 'Smiling' is not a column"):
        dataset_table("utkface", tmp_path / "utk", splits="seeded", target="Smiling")


def test_an_official_split_that_puts_copies_in_two_splits_is_reported(tmp_path):
    import shutil

    from finefcace.sources.duplicates import DuplicateImagesWarning

    root = fairface_layout(tmp_path / "ff", fairface_rows("train", 20), fairface_rows("val", 3))
    folder = root / "fairface-img-margin025-trainval"
    shutil.copy(folder / "train" / "7.jpg", folder / "val" / "1.jpg")  # labels differ: a conflict, left out
    shutil.copy(folder / "train" / "8.jpg", folder / "val" / "2.jpg")
    rows = fairface_rows("train", 20)
    (root / "fairface_label_val.csv").write_text("file,age,gender,race,service_test\n" + "\n".join(
        ["val/1.jpg,3-9,Male,White,True", rows[7].replace("train/8.jpg", "val/2.jpg"), "val/3.jpg,3-9,Male,White,True"])
        + "\n")
    with pytest.warns(DuplicateImagesWarning) as caught:
        table = dataset_table("fairface", root)
    messages = " | ".join(str(w.message) for w in caught)
    assert "1 of them with conflicting labels" in messages
    assert "the official split puts 1 group(s) of byte-identical images in two splits" in messages
    assert len(straddling_groups(table)) == 1
    seeded = dataset_table("fairface", root, splits="seeded")
    assert straddling_groups(seeded).empty
