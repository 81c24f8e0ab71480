"""Tests of finefcace/datasets.py: each adapter on fixture folders in the official layouts
(tiny images, quirks included) and on the real label files in ../shared/realdata."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from finefcace.data import CELEBA_ATTRIBUTES, FaceTableDataset, test_transform
from finefcace.datasets import (
    FAIRFACE_RACES, LFWA_COLUMNS, SkippedRowsWarning, celeba_table, dataset_table, fairface_table,
    parse_utkface_names, read_celeba_attributes, read_celeba_partition, read_fairface_labels,
    stratified_validation_split, utkface_table, lfwa_table,
)


def _jpg(path, size=(12, 12), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(path, format="JPEG")


# ====================================================================================== FairFace
HEADER = "file,age,gender,race,service_test"


def _fairface(root, train_rows, val_rows, *, newline="\n", images=True, folder="fairface-img-margin025-trainval"):
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train_rows), ("val", val_rows)):
        text = newline.join([HEADER, *rows]) + newline
        (root / f"fairface_label_{name}.csv").write_bytes(text.encode())
        if images:
            for row in rows:
                file = row.split(",")[0].replace("fairface/", "")
                _jpg(root / folder / file)
    return root


def _fairface_rows(split, n, start=1):
    ages = ["0-2", "3-9", "10-19", "20-29", "more than 70"]
    return [f"{split}/{i}.jpg,{ages[i % 5]},{('Male', 'Female')[i % 2]},{FAIRFACE_RACES[i % 7]},{('True', 'False')[i % 3 == 0]}"
            for i in range(start, start + n)]


def test_fairface_protocol_on_official_layout(tmp_path):
    root = _fairface(tmp_path / "ff", _fairface_rows("train", 140), _fairface_rows("val", 28))
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
    root = _fairface(tmp_path / "ff", train, ["val/1.jpg,3-9,Female,Indian,False"], newline="\r\n")
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
    root = _fairface(tmp_path / "ff", _fairface_rows("train", 14), _fairface_rows("val", 3))
    (root / "fairface-img-margin025-trainval/val/2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="fairface-img-margin025-trainval/val/2.jpg"):
        fairface_table(root)
    assert len(fairface_table(root, check_images=False)) == 17  # label-only mode


def test_fairface_finds_margin125_or_flat_layouts(tmp_path):
    margin = _fairface(tmp_path / "a", _fairface_rows("train", 7), _fairface_rows("val", 2),
                       folder="fairface-img-margin125-trainval")
    assert fairface_table(margin)["path"].iloc[0].startswith("fairface-img-margin125-trainval/train/")
    flat = _fairface(tmp_path / "b", _fairface_rows("train", 7), _fairface_rows("val", 2), folder=".")
    assert fairface_table(flat)["path"].iloc[0] == "train/1.jpg"


def test_stratified_split_is_exact_per_group():
    groups = pd.DataFrame({"race": ["a"] * 50 + ["b"] * 30, "gender": (["M", "F"] * 40)})
    mask = stratified_validation_split(groups, 0.1, seed=3)
    assert mask.sum() == 8
    assert groups[mask].groupby(["race", "gender"]).size().to_dict() == {("a", "F"): 2, ("a", "M"): 2,
                                                                          ("b", "F"): 2, ("b", "M"): 2}
    with pytest.raises(ValueError, match="fraction"):
        stratified_validation_split(groups, 1.5)


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


# ====================================================================================== UTKFace
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
        _jpg(folder / name, (20, 20))
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


# ====================================================================================== LFWA+
def _write_cell_strings(mat, name, strings, shape):
    import h5py

    refs = mat.require_group("#refs#")
    out = np.empty(len(strings), dtype=h5py.ref_dtype)
    for i, text in enumerate(strings):
        data = refs.create_dataset(f"{name}_{i}", data=np.array([ord(c) for c in text], dtype=np.uint16)[:, None])
        data.attrs["MATLAB_class"] = np.bytes_("char")
        out[i] = data.ref
    dataset = mat.create_dataset(name, data=out.reshape(shape))
    dataset.attrs["MATLAB_class"] = np.bytes_("cell")


def _lfwa_names():
    names = [f"Attr{i}" for i in range(73)]
    for name, position in LFWA_COLUMNS.items():
        names[position] = name
    return names


def _lfwa(root, labels, files, attr_names=None, train=None, test=None):
    """lfw_att_73.mat and indices_train_test.mat as MATLAB v7.3 writes them (HDF5, column-major)."""
    import h5py

    root.mkdir(parents=True, exist_ok=True)
    attr_names = attr_names or _lfwa_names()
    with h5py.File(root / "lfw_att_73.mat", "w") as mat:
        _write_cell_strings(mat, "AttrName", attr_names, (len(attr_names), 1))  # MATLAB 1x73
        _write_cell_strings(mat, "name", [f"lfw\\{f}" for f in files], (1, len(files)))  # MATLAB Nx1
        mat.create_dataset("label", data=np.asarray(labels, dtype=np.float64).T)  # MATLAB Nx73
    with h5py.File(root / "indices_train_test.mat", "w") as mat:
        mat.create_dataset("indices_img_train", data=np.asarray(train, dtype=np.float64)[None, :])
        mat.create_dataset("indices_img_test", data=np.asarray(test, dtype=np.float64)[None, :])
    for f in files:
        _jpg(root / "lfw" / f, (25, 25))


def _lfwa_labels(specs):
    """specs: (male, set of race names) per image → N x 73 0/1 matrix."""
    labels = np.zeros((len(specs), 73))
    for i, (male, races) in enumerate(specs):
        labels[i, LFWA_COLUMNS["Male"]] = male
        for race in races:
            labels[i, LFWA_COLUMNS[race]] = 1
    labels[:, 10] = 1  # some other attribute, kept under its name
    return labels


def test_lfwa_reads_matlab_v73_and_derives_race(tmp_path):
    specs = [(1, {"White"}), (0, {"Black"}), (1, {"Asian"}), (0, {"Indian"}), (1, set()), (0, {"White", "Black"})]
    files = [f"Person_{i}/Person_{i}_0001.jpg" for i in range(6)]
    _lfwa(tmp_path / "lfwa", _lfwa_labels(specs), files, train=[1, 2, 3], test=[4, 5, 6])
    with pytest.warns(SkippedRowsWarning, match="1 image.*more than one race flag"):
        table = lfwa_table(tmp_path / "lfwa")
    assert table["path"].tolist() == [f"lfw/{f}" for f in files]  # 'lfw\\' prefix and backslashes handled
    assert table["gender"].tolist() == ["Male", "Female", "Male", "Female", "Male", "Female"]
    assert table["race"].tolist() == ["White", "Black", "Asian", "Indian", "Undefined", "Undefined"]
    assert table["split"].tolist() == ["train"] * 3 + ["test"] * 3  # 1-based indices
    assert table["Attr10"].tolist() == [1] * 6 and "Male" in table.columns
    assert len(FaceTableDataset(table, tmp_path / "lfwa", "gender")) == 6
    with pytest.warns(SkippedRowsWarning):
        everything = lfwa_table(tmp_path / "lfwa", indices=None)
    assert set(everything["split"]) == {"test"}


def test_lfwa_refuses_a_file_whose_columns_disagree(tmp_path):
    names = _lfwa_names()
    names[1], names[2] = names[2], names[1]  # Asian and White swapped
    _lfwa(tmp_path / "lfwa", _lfwa_labels([(1, {"White"})]), ["A/A_0001.jpg"], attr_names=names, train=[1], test=[])
    with pytest.raises(ValueError, match=r"disagree.*'Asian': 'White'"):
        lfwa_table(tmp_path / "lfwa", check_images=False)


def test_lfwa_bad_indices_and_missing_files(tmp_path):
    _lfwa(tmp_path / "lfwa", _lfwa_labels([(1, {"White"}), (0, set())]), ["A/A_1.jpg", "B/B_1.jpg"],
          train=[0], test=[2])
    with pytest.raises(ValueError, match="1-based"):
        lfwa_table(tmp_path / "lfwa")
    with pytest.raises(FileNotFoundError, match="pass indices=None"):
        lfwa_table(tmp_path / "lfwa", indices="nothere.mat")
    (tmp_path / "lfwa" / "lfw_att_73.mat").write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(ValueError, match="not a MATLAB v7.3"):
        lfwa_table(tmp_path / "lfwa")


# ====================================================================================== CelebA
CELEBA_NAMES = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
                "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
                "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
                "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
                "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()


def _celeba(root, values, partitions):
    root.mkdir(parents=True, exist_ok=True)
    lines = [str(len(values)), " ".join(CELEBA_NAMES) + " "]
    for i, row in enumerate(values, 1):
        lines.append(f"{i:06d}.jpg " + " ".join(f"{v:2d}" for v in row))  # space-padded like the original
    (root / "list_attr_celeba.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    (root / "list_eval_partition.txt").write_bytes(
        "".join(f"{i:06d}.jpg {p}\r\n" for i, p in enumerate(partitions, 1)).encode())
    for i in range(1, len(partitions) + 1):
        _jpg(root / "img_align_celeba" / f"{i:06d}.jpg", (18, 22))


def test_celeba_official_layout(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.choice([-1, 1], size=(6, 40))
    _celeba(tmp_path / "celeba", values, [0, 0, 0, 1, 2, 2])
    table = celeba_table(tmp_path / "celeba")
    assert table["split"].tolist() == ["train"] * 3 + ["val"] + ["test"] * 2
    assert table["path"].iloc[0] == "img_align_celeba/000001.jpg"
    male = CELEBA_NAMES.index("Male")
    assert table["gender"].tolist() == ["Male" if v == 1 else "Female" for v in values[:, male]]
    for name in CELEBA_ATTRIBUTES:
        assert table[name].tolist() == [int(v == 1) for v in values[:, CELEBA_NAMES.index(name)]]
    dataset = FaceTableDataset(table, tmp_path / "celeba", "Smiling", split="test", transform=test_transform(8))
    assert dataset.classes == [0, 1] and len(dataset) == 2


def test_celeba_refuses_bad_values_and_names_lines(tmp_path):
    values = np.ones((3, 40), dtype=int)
    values[1, 5] = 0
    _celeba(tmp_path / "celeba", values, [0, 1, 2])
    with pytest.raises(ValueError, match=r"-1/1 \(lines \[4\]\)"):
        read_celeba_attributes(tmp_path / "celeba" / "list_attr_celeba.txt")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 3\n")
    with pytest.raises(ValueError, match="0, 1 or 2"):
        read_celeba_partition(tmp_path / "celeba" / "list_eval_partition.txt")


def test_celeba_real_partition(realdata_dir):
    partition = read_celeba_partition(realdata_dir / "celeba" / "list_eval_partition.txt")
    assert partition["split"].value_counts().to_dict() == {"train": 162_770, "val": 19_867, "test": 19_962}
    assert partition["image"].iloc[0] == "000001.jpg"  # CRLF stripped


def test_celeba_real_attributes(realdata_dir):
    path = realdata_dir / "celeba" / "list_attr_celeba.first20000.txt"
    with pytest.warns(SkippedRowsWarning, match="declares 202599 images but the file lists 20000"):
        attributes = read_celeba_attributes(path)
    assert len(attributes) == 20_000 and list(attributes.columns[1:]) == CELEBA_NAMES
    # Check against an independent, naive parse of the same file.
    lines = path.read_text().splitlines()[2:]
    male = CELEBA_NAMES.index("Male") + 1
    naive_male = sum(line.split()[male] == "1" for line in lines)
    assert int(attributes["Male"].sum()) == naive_male
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedRowsWarning)
        table = celeba_table(realdata_dir / "celeba", attributes=path.name, check_images=False)
    assert len(table) == 20_000 and set(table["split"]) == {"train"}  # the first 20,000 are all train
    assert (table["gender"] == "Male").sum() == naive_male
    assert all(set(table[a].unique()) <= {0, 1} for a in CELEBA_ATTRIBUTES)


def test_dataset_table_dispatch(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        dataset_table("imagenet", tmp_path)
    root = _fairface(tmp_path / "ff", _fairface_rows("train", 7), _fairface_rows("val", 2))
    assert len(dataset_table("fairface", root)) == 9
