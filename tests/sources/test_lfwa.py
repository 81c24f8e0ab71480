"""Tests of finefcace/sources/lfwa.py: the MATLAB v7.3 label files, race from the flags, the splits."""

from __future__ import annotations

import numpy as np
import pytest

from finefcace.sources.dataset import FaceTableDataset
from finefcace.sources.lfwa import LFWA_COLUMNS, lfwa_table
from finefcace.sources.releases import SkippedRowsWarning
from tests.sources.layouts import write_jpg


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
        write_jpg(root / "lfw" / f, (25, 25))


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
