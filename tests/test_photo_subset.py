"""scripts/photo_subset.py: a stratified, size-capped copy of a UTKFace download in its own
layout (what is carried to a GPU machine), refusing to write into a folder holding anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from finefcace.errors import UserError
from scripts import photo_subset as script  # the repository root is importable under pytest


def fake_utkface(root: Path, per_group: dict[tuple[int, int], int]) -> None:
    folder = root / "UTKFace"
    folder.mkdir(parents=True)
    for (gender, race), n in per_group.items():
        for i in range(n):
            Image.new("RGB", (16, 16), (10 * i, 5 * race, 100)).save(
                folder / f"{20 + i}_{gender}_{race}_2017011{race}{gender}{i:06d}.jpg.chip.jpg")


def test_the_subset_keeps_the_groups_proportions_under_the_cap(tmp_path):
    fake_utkface(tmp_path / "utk", {(0, 0): 60, (1, 0): 20, (0, 1): 20})  # White men 60 %
    one = (tmp_path / "utk" / "UTKFace").iterdir().__next__().stat().st_size
    summary = script.make_subset(tmp_path / "utk", tmp_path / "out", max_mib=50 * one / 2**20)
    copied = list((tmp_path / "out" / "UTKFace").iterdir())
    assert summary["photographs"] == len(copied) <= 50 and summary["of"] == 100
    counts = summary["per_group"]
    assert counts[("White", "Male")] > counts[("White", "Female")] > 0 and counts[("Black", "Male")] > 0
    assert abs(counts[("White", "Male")] / len(copied) - 0.6) < 0.1  # close to the download's shares
    with pytest.raises(UserError, match="is not empty"):  # nothing copied over an earlier subset
        script.make_subset(tmp_path / "utk", tmp_path / "out", max_mib=1)


def test_a_cap_that_admits_no_photograph_is_refused_before_anything_is_copied(tmp_path):
    fake_utkface(tmp_path / "utk", {(0, 0): 3})
    for cap in (0.0, -5.0, 1e-6):
        with pytest.raises(UserError, match="--max-mib"):
            script.make_subset(tmp_path / "utk", tmp_path / "out", max_mib=cap)
    assert not (tmp_path / "out").exists()


def test_skipped_files_are_counted_and_named_and_an_empty_download_refused(tmp_path, capsys):
    fake_utkface(tmp_path / "utk", {(0, 0): 3})
    images = tmp_path / "utk" / "UTKFace"
    (images / "30_1_2_20170109999999.jpg.chip.jpg").symlink_to(images / "gone.jpg")
    (images / "notes.txt").write_text("no labels in this name\n")
    assert script.main(["--utkface", str(tmp_path / "utk"), "--out", str(tmp_path / "out"), "--max-mib", "1"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 1 files whose names carry no labels" in printed and "notes.txt" in printed
    assert "skipped 1 photographs that cannot be read" in printed and "30_1_2_20170109999999" in printed
    assert "copied 3 of 3 photographs" in printed
    (tmp_path / "none" / "UTKFace").mkdir(parents=True)
    with pytest.raises(UserError, match="no UTKFace photographs"):
        script.make_subset(tmp_path / "none", tmp_path / "out2", max_mib=1)


def test_an_interrupted_copy_leaves_no_subset_and_the_rerun_completes(tmp_path, monkeypatch):
    fake_utkface(tmp_path / "utk", {(0, 0): 4})
    copies = []

    def copy_then_fail(source, target):
        if copies:
            raise KeyboardInterrupt  # Ctrl-C after the first photograph
        copies.append(target)
        return shutil.copy2(source, target)

    monkeypatch.setattr(script.shutil, "copy2", copy_then_fail)
    with pytest.raises(KeyboardInterrupt):
        script.make_subset(tmp_path / "utk", tmp_path / "out", max_mib=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["utk"]  # no partial subset, no leftover
    monkeypatch.undo()
    assert script.make_subset(tmp_path / "utk", tmp_path / "out", max_mib=1)["photographs"] == 4
