"""Tests of finefcace/sources/utkface.py: labels from file names, malformed names reported, the real names."""

from __future__ import annotations

import pytest

from finefcace.sources.dataset import FaceTableDataset
from finefcace.sources.releases import SkippedRowsWarning
from finefcace.sources.transforms import test_transform
from finefcace.sources.utkface import parse_utkface_names, utkface_table
from tests.sources.layouts import write_jpg

UTK_GOOD = ["25_0_0_20170116174525125.jpg.chip.jpg", "31_1_1_20170109142408075.jpg.chip.jpg",
            "4_1_2_20161219203650636.jpg.chip.jpg", "70_0_3_20170119180524126.jpg.chip.jpg",
            "116_1_4_20170120134921760.jpg.chip.jpg"]


UTK_BAD = ["39_1_20170116174525125.jpg.chip.jpg", "24_0_1_20170116220224657",
           "55_0_0_20170116232725357jpg.chip.jpg"]


def test_utkface_names_to_labels():
    table, malformed = parse_utkface_names(UTK_GOOD + UTK_BAD + ["200_0_0_20170116174525125.jpg.chip.jpg"])
    assert table["gender"].tolist() == ["Male", "Female", "Female", "Male", "Female"]  # 0 = male
    assert table["race"].tolist() == ["White", "Black", "Asian", "Indian", "Others"]
    assert table["age"].tolist() == [25, 31, 4, 70, 116]
    assert malformed == UTK_BAD + ["200_0_0_20170116174525125.jpg.chip.jpg"]  # age > 116 too


def test_utkface_folder_skips_and_reports_malformed_names(tmp_path):
    folder = tmp_path / "utk" / "UTKFace"
    for name in UTK_GOOD + UTK_BAD:
        write_jpg(folder / name, (20, 20))
    (folder / ".DS_Store").write_bytes(b"")
    with pytest.warns(SkippedRowsWarning, match=r"skipped 3 of 8.*39_1_20170116174525125"):
        table = utkface_table(tmp_path / "utk")
    assert len(table) == 5 and set(table["split"]) == {"test"}
    assert table["path"].str.startswith("UTKFace/").all()
    assert sorted(table.attrs["skipped"]) == sorted(UTK_BAD)
    dataset = FaceTableDataset(table, tmp_path / "utk", "gender", transform=test_transform(8))
    assert len(dataset) == 5
    (folder / UTK_GOOD[0]).unlink()
    with pytest.raises(FileNotFoundError, match="UTKFace folder|not found|missing"):
        utkface_table(tmp_path / "utk", filenames=UTK_GOOD)


def test_utkface_real_names(realdata_dir):
    names = (realdata_dir / "utkface" / "filenames.txt").read_text().splitlines()
    assert len(names) == 23_707
    with pytest.warns(SkippedRowsWarning, match="skipped 5 of 23707") as record:
        table = utkface_table(realdata_dir / "utkface", filenames=names, check_images=False)
    assert len(table) == 23_702  # nothing else lost
    skipped = table.attrs["skipped"]
    assert len(skipped) == 5 and all(name in str(record[0].message) for name in skipped)
    assert set(skipped) | {p for p in table["path"]} == set(names)
    assert set(table["race"]) == {"White", "Black", "Asian", "Indian", "Others"}
    assert table.groupby(["race", "gender"]).ngroups == 10
