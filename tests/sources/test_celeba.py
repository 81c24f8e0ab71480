"""Tests of finefcace/sources/celeba.py: the attribute and partition files, and the real ones."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from finefcace.sources.celeba import celeba_table, read_celeba_attributes, read_celeba_partition
from finefcace.sources.dataset import FaceTableDataset
from finefcace.sources.releases import SkippedRowsWarning
from finefcace.sources.table import CELEBA_ATTRIBUTES
from finefcace.sources.transforms import test_transform
from tests.sources.layouts import write_jpg

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
        write_jpg(root / "img_align_celeba" / f"{i:06d}.jpg", (18, 22))


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
