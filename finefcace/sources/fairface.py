"""FairFace's official layout → the dataset table (labels from its CSVs, images from the
``margin025`` or ``margin125`` folders; paper §4.1).

The file is read exactly as its publishers ship it; quirks of copies found in the wild are
read correctly or refused with a message naming the row and the fix — never mislabelled.
Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from finefcace.errors import DataError
from finefcace.sources.images import require_images
from finefcace.sources.releases import find_folder, refuse_rows
from finefcace.sources.splits import stratified_validation_split
from finefcace.sources.table import GENDERS

__all__ = ["FAIRFACE_AGES", "FAIRFACE_RACES", "LICENCE", "ImageFolderWarning", "fairface_table",
           "read_fairface_labels"]


class ImageFolderWarning(UserWarning):
    """The table points at FairFace's padding-1.25 images, not the padding-0.25 ones the paper uses."""

#: The terms FairFace is published under (a run trained on it says so in its model card).
LICENCE = ("CC BY 4.0 (Creative Commons Attribution 4.0): use, share and adapt, commercially too, with "
           "attribution: cite Karkkainen & Joo, WACV 2021")


FAIRFACE_RACES: tuple[str, ...] = (
    "White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern",
)
FAIRFACE_AGES: tuple[str, ...] = (
    "0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70",
)
#: Age groups that spreadsheets turned into dates: 3-9 → 9 March / 3 September, 10-19 → 19 October.
_SPREADSHEET_AGES: dict[str, str] = {
    "9-Mar": "3-9", "09-Mar": "3-9", "Mar-09": "3-9", "Mar-9": "3-9",
    "3-Sep": "3-9", "03-Sep": "3-9", "Sep-03": "3-9", "Sep-3": "3-9",
    "19-Oct": "10-19", "Oct-19": "10-19",
}
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_FAIRFACE_IMAGE_FOLDERS = ("fairface-img-margin025-trainval", "fairface-img-margin125-trainval")
_FAIRFACE_FILE = re.compile(r"^(?:.*/)?(train|val)/([^/]+\.jpe?g)$", re.IGNORECASE)


def read_fairface_labels(path: str | os.PathLike, split: str) -> pd.DataFrame:
    """Read one FairFace label CSV (``fairface_label_train.csv`` or ``_val.csv``).

    Returns columns ``file`` (``train/N.jpg``), ``age``, ``gender``, ``race``,
    ``service_test`` (bool). Handles CRLF, a UTF-8 BOM, surrounding spaces, a leading folder
    before ``train/``/``val/`` (e.g. ``fairface/``), spreadsheet-damaged ages (``9-Mar``,
    ``03-Sep`` → ``3-9``; ``19-Oct``, ``Oct-19`` → ``10-19``) and booleans (``TRUE``);
    anything else unexpected raises :class:`~finefcace.errors.DataError` naming the line and the fix.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FairFace label file not found: {path} (download fairface_label_{split}.csv)")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty ({path.stat().st_size} bytes, not even a header): an interrupted "
                        f"download or copy; download fairface_label_{split}.csv again") from None
    frame.columns = [c.strip() for c in frame.columns]
    expected = ["file", "age", "gender", "race", "service_test"]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; FairFace's header is {','.join(expected)} "
                         f"(found {list(frame.columns)})")
    frame = frame[expected].apply(lambda column: column.str.strip())
    line = np.arange(len(frame)) + 2  # 1-based file line (the header is line 1)
    source = str(path)

    files = frame["file"].str.replace("\\", "/", regex=False)
    match = files.str.extract(_FAIRFACE_FILE)
    bad = match[0].isna() | (match[0].str.lower() != split)
    if bad.any():
        rows = list(zip(line[bad.to_numpy()], frame.loc[bad, "file"]))
        refuse_rows(source, rows, f"a 'file' that is not '{split}/N.jpg'",
                f"Use the {split} label file for the {split} split; a row must name {split}/N.jpg.", int(bad.sum()))
    frame["file"] = split + "/" + match[1]

    ages = frame["age"].map(lambda a: _SPREADSHEET_AGES.get(a, a))
    bad = ~ages.isin(FAIRFACE_AGES)
    if bad.any():
        refuse_rows(source, list(zip(line[bad.to_numpy()], frame.loc[bad, "age"])), "an unknown age group",
                f"Expected one of {list(FAIRFACE_AGES)}. If the file went through a spreadsheet, download "
                f"the original CSV again (dates such as 9-Mar are repaired, other damage is not).", int(bad.sum()))
    frame["age"] = ages

    genders = frame["gender"].str.capitalize()
    bad = ~genders.isin(GENDERS)
    if bad.any():
        refuse_rows(source, list(zip(line[bad.to_numpy()], frame.loc[bad, "gender"])), "an unknown gender",
                "FairFace genders are Male and Female; fix or drop those rows.", int(bad.sum()))
    frame["gender"] = genders

    bad = ~frame["race"].isin(FAIRFACE_RACES)
    if bad.any():
        refuse_rows(source, list(zip(line[bad.to_numpy()], frame.loc[bad, "race"])), "an unknown race group",
                f"Expected one of {list(FAIRFACE_RACES)} (spelling and spaces as published).", int(bad.sum()))

    flags = frame["service_test"].str.lower().map(_BOOLEANS)
    bad = flags.isna()
    if bad.any():
        refuse_rows(source, list(zip(line[bad.to_numpy()], frame.loc[bad, "service_test"])),
                "a service_test value that is not True/False", "Fix those rows (True or False).", int(bad.sum()))
    frame["service_test"] = flags.astype(bool)
    duplicated = frame["file"].duplicated()
    if duplicated.any():
        refuse_rows(source, list(zip(line[duplicated.to_numpy()], frame.loc[duplicated, "file"])),
                "a file listed twice", "Remove the duplicated rows.", int(duplicated.sum()))
    return frame


def fairface_table(
    root: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    images: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    official_split: bool = True,
    check_images: bool = True,
) -> pd.DataFrame:
    """FairFace as a dataset table (the field's protocol).

    ``test`` = FairFace's ``val`` (its test set was never released); ``val`` = a seeded,
    race × gender stratified ``val_fraction`` of ``train``; ``train`` = the rest.
    With ``official_split=False`` the rows keep the release's ``train``/``val`` names and the
    ``val`` label file may be absent (a partial copy, e.g. train images only): the caller
    splits them (:func:`finefcace.sources.preparation.finish_table`, ``splits="seeded"`` or
    ``"test"``).
    Labels are read from ``labels`` (default ``root``); images from ``root/images`` where
    ``images`` defaults to ``fairface-img-margin025-trainval`` (or the margin125 variant, or
    ``root`` itself if ``train/`` lies directly there). Columns: ``path``, ``split``,
    ``gender``, ``race`` (7 groups), ``age``, ``service_test``.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    root = Path(root)
    label_dir = Path(labels) if labels is not None else root
    train = read_fairface_labels(label_dir / "fairface_label_train.csv", "train")
    val_file = label_dir / "fairface_label_val.csv"
    if official_split and not val_file.is_file():
        raise FileNotFoundError(
            f"FairFace label file not found: {val_file}. The official protocol tests on FairFace's val split; "
            f"this copy has none. Download fairface_label_val.csv and the val images, or split the rows you "
            f"have: splits='seeded' (python -m data_prep fairface --splits seeded) trains on them, "
            f"splits='test' makes them a cross-dataset test set")
    test = read_fairface_labels(val_file, "val") if val_file.is_file() else train.iloc[:0].copy()
    if images is None:
        images = find_folder(root, _FAIRFACE_IMAGE_FOLDERS, "train")
        if images is None:
            images = "" if (root / "train").is_dir() else _FAIRFACE_IMAGE_FOLDERS[0]
        if images == _FAIRFACE_IMAGE_FOLDERS[1]:  # found, not chosen: say so
            warnings.warn(f"FairFace: {root} holds only the padding-1.25 images ({images}/), so the table points "
                          f"at them; the paper uses padding 0.25 ({_FAIRFACE_IMAGE_FOLDERS[0]}/). Unpack that "
                          f"archive there, or name this folder (images='{images}'; data_prep: --images {images}) to "
                          "use these knowingly",
                          ImageFolderWarning, stacklevel=2)
    prefix = f"{images.strip('/')}/" if images else ""
    if official_split:
        validation = stratified_validation_split(train[["race", "gender"]], val_fraction, seed)
        train["split"] = np.where(validation, "val", "train")
        test["split"] = "test"
    else:
        train["split"], test["split"] = "train", "val"
    table = pd.concat([train, test], ignore_index=True)
    table.insert(0, "path", prefix + table.pop("file"))
    table = table[["path", "split", "gender", "race", "age", "service_test"]]
    table.attrs["dataset"] = "fairface"
    table.attrs["image_folder"] = images or "."
    if check_images:
        require_images(table, root)
    return table
