"""Tests of data_prep/: the dataset preparation commands on fixture downloads."""

from __future__ import annotations

import json
import subprocess
import sys

import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_prep import cli
from finefcace.sources.table import load_table

RACES = ["White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern"]


def _jpg(path, size=(16, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))  # distinct files: no accidental duplicates
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="JPEG")


def _fairface(root, n_train=140, n_val=7):
    folder = root / "fairface-img-margin025-trainval"
    for split, n in (("train", n_train), ("val", n_val)):
        rows = ["file,age,gender,race,service_test"]
        for i in range(1, n + 1):
            rows.append(f"{split}/{i}.jpg,20-29,{('Male', 'Female')[i % 2]},{RACES[i % 7]},False")
            _jpg(folder / split / f"{i}.jpg", (24, 30))
        (root / f"fairface_label_{split}.csv").write_text("\r\n".join(rows) + "\r\n")
    return root


def test_fairface_command_writes_table_and_report(tmp_path, capsys):
    root = _fairface(tmp_path / "download")
    out = tmp_path / "tables"
    assert cli.main(["fairface", "--root", str(root), "--out", str(out), "--decode"]) == 0
    table = load_table(out / "fairface.csv")
    assert len(table) == 147 and set(table["split"]) == {"train", "val", "test"}
    report = json.loads((out / "fairface_report.json").read_text())
    assert report["rows"] == 147 and report["images_checked"] == "decoded"
    assert any("86744" in note for note in report["count_checks"])  # a fixture is not the full release
    assert "count check" in capsys.readouterr().out


def test_missing_and_corrupt_images_fail_before_training_unless_dropped(tmp_path, capsys):
    root = _fairface(tmp_path / "download")
    (root / "fairface-img-margin025-trainval/val/3.jpg").unlink()
    corrupt = root / "fairface-img-margin025-trainval/train/5.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # truncated JPEG
    out = tmp_path / "tables"
    assert cli.main(["fairface", "--root", str(root), "--out", str(out)]) == 1  # existence check only
    assert "val/3.jpg" in capsys.readouterr().err
    assert not (out / "fairface.csv").exists()
    assert cli.main(["fairface", "--root", str(root), "--out", str(out), "--decode"]) == 1
    problems = pd.read_csv(out / "fairface_problems.csv")
    assert set(problems["problem"]) == {"missing", "unreadable", "tiny"}  # 24x30 fixtures are tiny
    problems = problems[problems["problem"] != "tiny"]
    assert dict(zip(problems["path"].str.split("/", n=1).str[1], problems["problem"])) == {
        "val/3.jpg": "missing", "train/5.jpg": "unreadable"}
    assert cli.main(["fairface", "--root", str(root), "--out", str(out), "--decode", "--drop-bad"]) == 0
    table = load_table(out / "fairface.csv")
    assert len(table) == 145 and not table["path"].str.endswith(("val/3.jpg", "train/5.jpg")).any()
    assert json.loads((out / "fairface_report.json").read_text())["dropped_images"] == 2


def test_cache_resized_copies(tmp_path, capsys):
    root = _fairface(tmp_path / "download", n_train=7, n_val=2)
    out = tmp_path / "tables"
    assert cli.main(["fairface", "--root", str(root), "--out", str(out), "--cache-size", "12"]) == 0
    report = json.loads((out / "fairface_report.json").read_text())
    cache = tmp_path / "tables" / "fairface_12px"
    assert report["image_root"] == str(cache.resolve())
    for path in load_table(out / "fairface.csv")["path"]:
        assert Image.open(cache / path).size == (12, 15)  # 24x30 → shorter side 12


def test_utkface_command_reports_malformed_names(tmp_path, capsys):
    folder = tmp_path / "utk" / "UTKFace"
    for name in ("25_0_0_20170116174525125.jpg.chip.jpg", "31_1_1_20170109142408075.jpg.chip.jpg",
                 "39_1_20170116174525125.jpg.chip.jpg"):
        _jpg(folder / name)
    assert cli.main(["utkface", "--root", str(tmp_path / "utk"), "--out", str(tmp_path / "t")]) == 0
    assert "skipped 1 of 3" in capsys.readouterr().out
    report = json.loads((tmp_path / "t" / "utkface_report.json").read_text())
    assert report["skipped_names"] == ["39_1_20170116174525125.jpg.chip.jpg"] and report["rows"] == 2


def test_strict_counts_and_errors_name_the_problem(tmp_path, capsys):
    root = _fairface(tmp_path / "download", n_train=7, n_val=2)
    assert cli.main(["fairface", "--root", str(root), "--out", str(tmp_path / "t"), "--strict"]) == 1
    capsys.readouterr()
    assert cli.main(["celeba", "--root", str(tmp_path / "nothing"), "--out", str(tmp_path / "t")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["celeba", "--root", str(tmp_path / "empty"), "--out", str(tmp_path / "t")]) == 2
    assert "list_attr_celeba.txt" in capsys.readouterr().err


def test_real_fairface_labels_match_the_release(realdata_dir, tmp_path):
    out = tmp_path / "t"
    assert cli.main(["fairface", "--root", str(realdata_dir / "fairface"), "--out", str(out), "--labels-only"]) == 0
    report = json.loads((out / "fairface_report.json").read_text())
    assert report["count_checks"] == [] and report["rows"] == 86_744 + 10_954
    assert len(report["groups"]["test"]) == 14


def test_synthetic_command(tmp_path, capsys):
    out = tmp_path / "syn"
    assert cli.main(["synthetic", "--out", str(out), "--n-train", "16", "--n-val", "8", "--n-test", "16",
                     "--size", "24", "--knob", "noise=0", "--knob", "cue_contrast=(1,1,1,0.5)"]) == 0
    table = load_table(out / "labels.csv")
    assert len(table) == 40
    recorded = json.loads((out / "bias.json").read_text())
    assert recorded["noise"] == 0 and recorded["cue_contrast"] == [1, 1, 1, 0.5]
    assert cli.main(["synthetic", "--out", str(out), "--knob", "contrast=1"]) == 2
    assert "unknown bias knob" in capsys.readouterr().err


def test_one_entry_point(project_root):
    """``python -m data_prep <dataset>`` is the one command; there is no per-dataset module."""
    for argv in (["-h"], ["celeba", "--help"]):
        result = subprocess.run([sys.executable, "-m", "data_prep", *argv],
                                cwd=project_root, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "usage" in result.stdout.lower()
    assert sorted(p.name for p in (project_root / "data_prep").glob("*.py")) == ["__init__.py", "__main__.py", "cli.py"]


@pytest.mark.parametrize("argv", [["fairface"], ["imagenet", "--root", "x"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def _utkface_with_bad_files(tmp_path):
    """A UTKFace layout: real (or synthetic) photos, a copy filed under another gender, and the bad files."""
    import shutil

    from tests.sources.bad_images import BAD_FILES, write_bad_files

    scratch = tmp_path / "scratch"
    good, _ = write_bad_files(scratch)
    folder = tmp_path / "utk" / "UTKFace"
    folder.mkdir(parents=True)
    names = {}
    for i, name in enumerate(good + sorted(BAD_FILES)):
        label = f"{20 + i}_{i % 2}_{i % 5}_2017011600{i:04d}.jpg.chip.jpg"
        shutil.copy(scratch / name, folder / label)
        names[label] = name
    shutil.copy(folder / next(iter(names)), folder / "21_1_0_201701160099.jpg.chip.jpg")  # the same photo, other gender
    for i in range(100):  # ten ordinary photos per race x gender: enough for a seeded split
        _jpg(folder / f"{30 + i}_{i % 2}_{i % 5}_2017011700{i:04d}.jpg.chip.jpg", (40, 40))
    return tmp_path / "utk", names


def test_data_prep_names_every_bad_file_and_always_writes_its_problems_list(tmp_path, capsys):
    from tests.sources.bad_images import BAD_FILES, UNUSABLE

    root, names = _utkface_with_bad_files(tmp_path)
    out = tmp_path / "tables"
    assert cli.main(["utkface", "--root", str(root), "--out", str(out), "--decode", "--splits", "seeded"]) == 1
    error = capsys.readouterr().err
    assert f"{len(UNUSABLE)} of" in error and "--drop-bad" in error and not (out / "utkface.csv").exists()
    problems = pd.read_csv(out / "utkface_problems.csv")
    found = {names[p.split("/")[-1]]: problem for p, problem in zip(problems["path"], problems["problem"])
             if p.split("/")[-1] in names}
    assert found == BAD_FILES
    assert cli.main(["utkface", "--root", str(root), "--out", str(out), "--decode", "--splits", "seeded",
                     "--drop-bad"]) == 0
    printed = capsys.readouterr().out
    assert "1 groups of byte-identical images (2 files); 1 of them with conflicting labels" in printed
    report = json.loads((out / "utkface_report.json").read_text())
    assert report["dropped_images"] == len(UNUSABLE)
    assert report["preparation"]["duplicates"]["conflicting"] == 1
    assert report["preparation"]["groups_in_two_splits"] == 0
    table = load_table(out / "utkface.csv")
    assert set(table["split"]) == {"train", "val", "test"} and "content_hash" in table.columns
    clean = tmp_path / "clean"
    (clean / "UTKFace").mkdir(parents=True)
    _jpg(clean / "UTKFace" / "25_0_0_20170116174525125.jpg.chip.jpg", (40, 40))
    assert cli.main(["utkface", "--root", str(clean), "--out", str(tmp_path / "t2"), "--decode"]) == 0
    assert pd.read_csv(tmp_path / "t2" / "utkface_problems.csv").empty  # written, and empty: an answer


def test_data_prep_help_states_the_bad_image_policy(project_root):
    result = subprocess.run([sys.executable, "-m", "data_prep", "utkface", "--help"], cwd=project_root,
                            capture_output=True, text=True, timeout=120)
    assert "refuse before training" in result.stdout and "MAX_IMAGE_PIXELS" in result.stdout
