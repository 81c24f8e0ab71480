"""Tests of finefcace/sources/fairface.py: the adapter on fixture folders in the official layout
(tiny images, quirks included) and on the real label files in ../shared/realdata."""

from __future__ import annotations

import warnings

import pytest

from finefcace.errors import DataError
from finefcace.sources.dataset import FaceTableDataset
from finefcace.sources.fairface import FAIRFACE_RACES, fairface_table, read_fairface_labels
from finefcace.sources.transforms import test_transform
from tests.sources.layouts import HEADER, fairface_layout, fairface_rows


def test_fairface_protocol_on_official_layout(tmp_path):
    root = fairface_layout(tmp_path / "ff", fairface_rows("train", 140), fairface_rows("val", 28))
    table = fairface_table(root)
    assert list(table.columns) == ["path", "split", "gender", "race", "age", "service_test"]
    assert table["path"].iloc[0] == "fairface-img-margin025-trainval/train/1.jpg"
    assert (table["split"] == "test").sum() == 28  # test = FairFace's val
    assert table.loc[table["split"] == "test", "path"].str.contains("/val/").all()
    # Validation: 10 % of each race x gender cell of train (14 cells of 10 → 1 each).
    val = table[table["split"] == "val"]
    assert len(val) == 14 and val.groupby(["race", "gender"]).size().eq(1).all()
    assert val["path"].str.contains("/train/").all()
    # Seeded: same seed → same split; another seed → another split.
    assert fairface_table(root)["split"].equals(table["split"])
    assert not fairface_table(root, seed=1)["split"].equals(table["split"])
    # Through the one Dataset.
    dataset = FaceTableDataset(table, root, "gender", split="test", transform=test_transform(16))
    assert dataset[0][0].shape == (3, 16, 16)


def test_fairface_spreadsheet_quirks_are_repaired(tmp_path):
    train = [
        "fairface/train/1.jpg,9-Mar,Male,White,TRUE",
        "fairface/train/2.jpg,03-Sep,Female,East Asian,FALSE",
        "fairface/train/3.jpg,19-Oct,Male,Latino_Hispanic,true",
        "fairface/train/4.jpg,Oct-19,Female,Middle Eastern,False",
        "fairface/train/5.jpg,more than 70,Male,Southeast Asian,True",
    ]
    root = fairface_layout(tmp_path / "ff", train, ["val/1.jpg,3-9,Female,Indian,False"], newline="\r\n")
    # A BOM as spreadsheets write it.
    label = root / "fairface_label_train.csv"
    label.write_bytes(b"\xef\xbb\xbf" + label.read_bytes())
    frame = read_fairface_labels(label, "train")
    assert frame["age"].tolist() == ["3-9", "3-9", "10-19", "10-19", "more than 70"]
    assert frame["service_test"].tolist() == [True, False, True, False, True]
    assert frame["file"].tolist() == [f"train/{i}.jpg" for i in range(1, 6)]
    assert frame["race"].tolist()[2] == "Latino_Hispanic"
    table = fairface_table(root, val_fraction=0.0)
    assert set(table["split"]) == {"train", "test"}


@pytest.mark.parametrize("row, message", [
    ("train/1.jpg,5-Jan,Male,White,True", r"unknown age group.*line 2: '5-Jan'.*download"),
    ("train/1.jpg,20-29,male?,White,True", r"unknown gender.*line 2: 'male\?'"),
    ("train/1.jpg,20-29,Male,Hispanic,True", r"unknown race.*line 2: 'Hispanic'.*Latino_Hispanic"),
    ("train/1.jpg,20-29,Male,White,maybe", r"True/False.*line 2: 'maybe'"),
    ("val/1.jpg,20-29,Male,White,True", r"train/N.jpg.*line 2: 'val/1.jpg'"),
])
def test_fairface_refuses_what_it_cannot_read_naming_the_line(tmp_path, row, message):
    path = tmp_path / "fairface_label_train.csv"
    path.write_text(f"{HEADER}\n{row}\n")
    with pytest.raises(ValueError, match=message):
        read_fairface_labels(path, "train")


def test_fairface_missing_image_is_an_error_naming_it(tmp_path):
    root = fairface_layout(tmp_path / "ff", fairface_rows("train", 14), fairface_rows("val", 3))
    (root / "fairface-img-margin025-trainval/val/2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="fairface-img-margin025-trainval/val/2.jpg"):
        fairface_table(root)
    assert len(fairface_table(root, check_images=False)) == 17  # label-only mode


def test_fairface_finds_margin125_or_flat_layouts(tmp_path):
    from finefcace.sources.fairface import ImageFolderWarning

    margin = fairface_layout(tmp_path / "a", fairface_rows("train", 7), fairface_rows("val", 2),
                       folder="fairface-img-margin125-trainval")
    with pytest.warns(ImageFolderWarning, match="only the padding-1.25 images .*the paper uses padding 0.25"):
        table = fairface_table(margin)  # found, not chosen: said, not silent
    assert table["path"].iloc[0].startswith("fairface-img-margin125-trainval/train/")
    assert table.attrs["image_folder"] == "fairface-img-margin125-trainval"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageFolderWarning)  # named on purpose: no warning
        fairface_table(margin, images="fairface-img-margin125-trainval")
    flat = fairface_layout(tmp_path / "b", fairface_rows("train", 7), fairface_rows("val", 2), folder=".")
    assert fairface_table(flat)["path"].iloc[0] == "train/1.jpg"


def test_an_empty_label_file_is_refused_naming_it(tmp_path):
    root = fairface_layout(tmp_path / "f", fairface_rows("train", 7), fairface_rows("val", 2))
    (root / "fairface_label_train.csv").write_bytes(b"")  # an interrupted download
    with pytest.raises(DataError, match=r"fairface_label_train\.csv is empty \(0 bytes"):
        fairface_table(root)


def test_fairface_real_labels(realdata_dir):
    table = fairface_table(realdata_dir / "fairface", check_images=False)
    train_and_val = table[table["split"] != "test"]
    assert len(train_and_val) == 86_744 and (table["split"] == "test").sum() == 10_954
    assert table.groupby(["race", "gender"]).ngroups == 14
    assert set(table["race"]) == set(FAIRFACE_RACES)
    # Validation is 10 % of every race x gender cell of train, within rounding.
    share = train_and_val.groupby(["race", "gender"])["split"].apply(lambda s: (s == "val").mean())
    assert share.between(0.0995, 0.1005).all()
    assert table["path"].is_unique
