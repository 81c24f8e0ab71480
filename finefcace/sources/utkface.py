"""UTKFace's release (labels in the file names ``age_gender_race_datetime.jpg``) → the dataset
table: a cross-dataset test set (paper §4.1, Tables 3-4).

Malformed names are left out and listed in a warning, never guessed. Introduced in the book
in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from finefcace.sources.images import require_images
from finefcace.sources.releases import SkippedRowsWarning, find_folder
from finefcace.sources.table import GENDERS

__all__ = ["LICENCE", "UTKFACE_RACES", "parse_utkface_names", "utkface_table"]

#: The terms UTKFace is published under (a run trained on it says so in its model card).
LICENCE = ("non-commercial research only; the copyright of the images stays with their owners "
           "(UTKFace, Zhang, Song & Qi, CVPR 2017)")


UTKFACE_RACES: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Others")
_UTKFACE_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)\.jpg(?:\.chip\.jpg)?$", re.IGNORECASE)
_UTKFACE_FOLDERS = ("UTKFace", "utkface", "utkface_aligned_cropped/UTKFace", "crop_part1")


def parse_utkface_names(names: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """Labels from UTKFace file names ``age_gender_race_datetime.jpg[.chip.jpg]``.

    Returns (table of ``file``, ``age``, ``gender``, ``race``) and the malformed names, which
    are left out (never guessed). gender 0 = Male, 1 = Female; race 0 White, 1 Black,
    2 Asian, 3 Indian, 4 Others. Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    rows, malformed = [], []
    for name in names:
        name = name.strip()
        if not name:
            continue
        match = _UTKFACE_NAME.match(name)
        if match is None or int(match.group(1)) > 116:
            malformed.append(name)
            continue
        age, gender, race, _ = match.groups()
        rows.append((name, int(age), GENDERS[1] if gender == "0" else GENDERS[0], UTKFACE_RACES[int(race)]))
    table = pd.DataFrame(rows, columns=["file", "age", "gender", "race"])
    return table, malformed


def utkface_table(
    root: str | os.PathLike,
    *,
    images: str | None = None,
    filenames: Iterable[str] | None = None,
    split: str = "test",
    check_images: bool = True,
) -> pd.DataFrame:
    """UTKFace as a dataset table (a cross-dataset test set: every row gets ``split``).

    Labels come from the file names in ``root/images`` (default: ``UTKFace/`` if present,
    else ``root``), or from ``filenames`` when given (label-only use). Malformed names are
    skipped, counted and listed in a :class:`SkippedRowsWarning` (the real release has 5 of
    23,707); hidden files (``.DS_Store``) are ignored. Columns: ``path``, ``split``,
    ``gender``, ``race`` (5 groups), ``age``. Introduced in notebook 01.
    """
    root = Path(root)
    if images is None:
        images = find_folder(root, _UTKFACE_FOLDERS, "") or ""
    folder = root / images if images else root
    if filenames is None:
        if not folder.is_dir():
            raise FileNotFoundError(f"UTKFace image folder not found: {folder} (unpack UTKFace.tar.gz there "
                                    f"or pass images=)")
        filenames = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    table, malformed = parse_utkface_names(filenames)
    if malformed:
        warnings.warn(
            f"UTKFace: skipped {len(malformed)} of {len(table) + len(malformed)} file names that do not "
            f"follow age_gender_race_datetime.jpg (labels cannot be read from them): {malformed}",
            SkippedRowsWarning, stacklevel=2,
        )
    prefix = f"{images.strip('/')}/" if images else ""
    table.insert(0, "path", prefix + table.pop("file"))
    table.insert(1, "split", split)
    table = table[["path", "split", "gender", "race", "age"]]
    table.attrs["dataset"] = "utkface"
    table.attrs["skipped"] = malformed
    if check_images:
        require_images(table, root)
    return table
