"""scripts/photo_subset.py: a stratified, size-capped copy of a UTKFace download in its own
layout (what is carried to a GPU machine), refusing to write into a folder holding anything."""

from __future__ import annotations

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
