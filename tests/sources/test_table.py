"""Tests of finefcace/sources/table.py: the table contract and its CSV form."""

from __future__ import annotations

import pandas as pd
import pytest

from finefcace.errors import DataError
from finefcace.sources.table import classes_for, load_table, save_table, validate_table


def test_classes_for_gender_binary_and_strings():
    table = pd.DataFrame({"gender": ["Male", "Male"], "Smiling": [1, 1], "race": ["White", "Black"],
                          "path": ["a", "b"], "split": ["train", "test"]})
    assert classes_for(table, "gender") == ["Female", "Male"]  # both classes even if one is absent
    assert classes_for(table, "Smiling") == [0, 1]
    assert classes_for(table, "race") == ["Black", "White"]
    with pytest.raises(ValueError, match="'age' is not a column"):
        classes_for(table, "age")


def test_validate_table_names_bad_rows():
    with pytest.raises(ValueError, match="lacks column"):
        validate_table(pd.DataFrame({"path": ["a"]}))
    bad = pd.DataFrame({"path": ["a", "b"], "split": ["train", "training"]})
    with pytest.raises(ValueError, match=r"rows \[1\].*'training'"):
        validate_table(bad)
    missing = pd.DataFrame({"path": ["a", "b"], "split": ["train", "test"], "gender": ["Male", None]})
    with pytest.raises(ValueError, match=r"missing in 1 row.*\[1\]"):
        validate_table(missing, "gender")


def test_table_round_trip_keeps_types(tmp_path, image_root):
    _, table = image_root
    path = save_table(table, tmp_path / "out" / "table.csv")
    assert b"\r\n" not in path.read_bytes()
    back = load_table(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert back["Smiling"].dtype.kind == "i"
    # A CRLF copy (e.g. edited on Windows) reads the same.
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    pd.testing.assert_frame_equal(load_table(crlf), back)


@pytest.mark.parametrize(("path", "reason"), [
    ("/etc/hostname", "absolute"), ("C:\\faces\\1.jpg", "absolute"), ("\\\\server\\share\\1.jpg", "absolute"),
    ("../outside.jpg", "'..'"), ("train/../../outside.jpg", "'..'"), ("train\\..\\..\\x.jpg", "'..'"),
    ("", "empty"), (None, "empty"),
])
def test_paths_that_leave_the_root_are_refused_naming_the_row(path, reason):
    table = pd.DataFrame({"path": ["train/1.jpg", path, "test/2.jpg"], "split": ["train", "train", "test"]})
    with pytest.raises(DataError, match=rf"1 row\(s\) whose 'path' leaves the image root — [^:]*{reason}[^:]*: rows \[1\]"):
        validate_table(table)


def test_dots_inside_a_name_are_fine():
    validate_table(pd.DataFrame({"path": ["a..b/c...jpg", ".hidden/1.jpg", "x/..y.jpg"], "split": "train"}))


def test_a_loaded_table_is_named_in_the_message(tmp_path):
    (tmp_path / "t.csv").write_text("path,split\nok.jpg,train\n../up.jpg,test\n")
    with pytest.raises(DataError, match=r"t\.csv \(rows count from 0 after the header\): .*rows \[1\] \('\.\./up\.jpg'\)"):
        load_table(tmp_path / "t.csv")


def test_a_folder_of_images_is_a_table_without_labels(tmp_path):
    from finefcace.sources.table import folder_table

    for name in ("b/2.JPG", "a/1.png", "notes.txt", ".hidden.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    table = folder_table(tmp_path)
    assert table.to_dict("list") == {"path": ["a/1.png", "b/2.JPG"], "split": ["test", "test"]}
    with pytest.raises(DataError, match="is not a folder"):
        folder_table(tmp_path / "b" / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        folder_table(tmp_path / "empty")


def test_image_names_that_cannot_be_read_are_skipped_and_named(tmp_path):
    from finefcace.sources.table import folder_table

    (tmp_path / "1.png").write_bytes(b"x")
    (tmp_path / "moved.jpg").symlink_to(tmp_path / "elsewhere.jpg")  # dangling
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")        # a loop
    table = folder_table(tmp_path)
    assert table["path"].tolist() == ["1.png"] and table.attrs["skipped"] == ["loop.png", "moved.jpg"]
    (tmp_path / "1.png").unlink()
    with pytest.raises(DataError, match=r"holds no images .*2 image name\(s\) are links to nothing readable"):
        folder_table(tmp_path)


def test_a_table_without_split_is_one_split_only_when_asked(tmp_path):
    (tmp_path / "t.csv").write_text("path,gender\na.jpg,Male\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['split'\]"):
        load_table(tmp_path / "t.csv")
    assert load_table(tmp_path / "t.csv", default_split="test").columns.tolist() == ["path", "split", "gender"]
