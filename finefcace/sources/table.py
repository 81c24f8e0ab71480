"""The one table format every face dataset is turned into.

Every adapter (FairFace, UTKFace, LFWA+, CelebA in :mod:`finefcace.sources.adapters`, the
synthetic faces in :mod:`finefcace.sources.synthetic`) turns its files into a *dataset table*:
a ``pandas.DataFrame`` with

- ``path``: image path relative to a root folder,
- ``split``: one of ``train``, ``val``, ``test``,
- target columns (``gender``, the CelebA attributes as 0/1 ints, ...),
- protected columns (``race``, ``gender`` or ``tone``).

:class:`finefcace.sources.dataset.FaceTableDataset` reads any such table. Introduced in the
book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from finefcace import outputs
from finefcace.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
GENDERS: list[str] = ["Female", "Male"]

#: The 13 "gender-independent" CelebA attributes the paper classifies (§4.1, Tables 6-8).
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "Bags_Under_Eyes", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Chubby",
    "Eyeglasses", "Gray_Hair", "High_Cheekbones", "Mouth_Slightly_Open", "Narrow_Eyes",
    "Smiling", "Wearing_Hat",
)


def validate_table(table: pd.DataFrame, target: str | None = None, *, source: str = "dataset table") -> None:
    """Check the table contract (``path`` relative and inside the image root, ``split`` in
    train/val/test, target present); ``source`` names the table in messages (e.g. its file).

    Raises :class:`~finefcace.errors.DataError` naming the first offending rows and how to fix them.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    missing = [c for c in ("path", "split") if c not in table.columns]
    if missing:
        raise DataError(
            f"{source} lacks column(s) {missing}; a table needs 'path' (relative to the "
            f"image root) and 'split' (train/val/test). Columns present: {list(table.columns)}"
        )
    check_paths(table, source)
    bad = ~table["split"].isin(SPLITS)
    if bad.any():
        rows = table.index[bad][:5].tolist()
        values = table.loc[bad, "split"].unique()[:5].tolist()
        raise DataError(
            f"{source}: {int(bad.sum())} row(s) with a split outside {SPLITS} "
            f"(rows {rows}, values {values}); fix the 'split' column"
        )
    if target is not None:
        if target not in table.columns:
            raise DataError(
                f"target {target!r} is not a column of the table; available: {list(table.columns)}"
            )
        nan = table[target].isna()
        if nan.any():
            rows = table.index[nan][:5].tolist()
            raise DataError(
                f"target {target!r} is missing in {int(nan.sum())} row(s) (first rows {rows}); "
                f"drop those rows or fill the labels"
            )


def check_paths(table: pd.DataFrame, source: str = "dataset table") -> None:
    """Refuse image paths that would leave the image root: absolute ones (``/x``, ``C:\\x``,
    ``\\\\server\\x``), ones with a ``..`` part, and empty ones. Every image a table names is
    read from — and every copy made of it written to — a place under the root the table is
    given with (checked on the path's text: a symbolic link inside the root is followed).
    Raises :class:`~finefcace.errors.DataError` naming the rows. Introduced in notebook 01.
    """
    text = table["path"].astype(str)
    reasons = {
        "absolute": text.str.match(r"^(?:[/\\]|[A-Za-z]:)"),
        "climbing out with '..'": text.str.contains(r"(?:^|[/\\])\.\.(?:[/\\]|$)"),
        "empty": table["path"].isna() | (text.str.strip() == ""),
    }
    problems = [(reason, mask) for reason, mask in reasons.items() if mask.any()]
    if not problems:
        return
    count = int(sum(mask for _, mask in problems).astype(bool).sum())
    shown = "; ".join(f"{reason}: rows {table.index[mask][:3].tolist()} "
                      f"({', '.join(repr(p) for p in table.loc[mask, 'path'][:3])})" for reason, mask in problems)
    raise DataError(
        f"{source}: {count} row(s) whose 'path' leaves the image root — {shown}. A path must be relative "
        "to the image root, without '..' parts: fix or drop those rows"
    )


def classes_for(table: pd.DataFrame, target: str) -> list:
    """Label encoding of ``target``: the list whose positions are the class indices.

    ``gender`` → ``["Female", "Male"]``; 0/1 attribute columns → ``[0, 1]``; any other
    column → its sorted distinct values. Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    if target not in table.columns:
        raise DataError(f"target {target!r} is not a column of the table; available: {list(table.columns)}")
    if target == "gender":
        return list(GENDERS)
    values = pd.unique(table[target].dropna())
    if len(values) and all(_is_binary(v) for v in values):
        return [0, 1]
    return sorted(values.tolist(), key=str)


def _is_binary(value: Any) -> bool:
    try:
        return float(value) in (0.0, 1.0) and not isinstance(value, str)
    except (TypeError, ValueError):
        return False


#: The file suffixes :func:`folder_table` takes for images.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def folder_table(folder: str | os.PathLike, split: str = "test") -> pd.DataFrame:
    """A table of the images under ``folder`` (any depth, sorted; no labels): ``path``
    relative to ``folder`` and ``split``. What ``python -m finefcace predict --images`` reads.

    An image name that is no file to read — a dangling symbolic link, a link loop — is skipped,
    never silently: the skipped paths are in ``attrs["skipped"]`` for the caller to count and
    name. A folder with no image to read is refused, naming what was skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {os.fspath(folder)!r} is not a folder; give the folder holding the images")
    named = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    paths = sorted(p.relative_to(folder).as_posix() for p in named if p.is_file())
    skipped = sorted(p.relative_to(folder).as_posix() for p in named if not p.is_file() and not p.is_dir())
    if not paths:
        unreadable = (f"; {len(skipped)} image name(s) are links to nothing readable (dangling or looping): "
                      f"{skipped[:5]}") if skipped else ""
        raise DataError(f"image folder {os.fspath(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}){unreadable}")
    table = pd.DataFrame({"path": paths, "split": split})
    table.attrs["skipped"] = skipped
    return table


def load_table(path: str | os.PathLike, *, default_split: str | None = None) -> pd.DataFrame:
    """Read a dataset table written by :func:`save_table` (CSV). A table without a ``split``
    column is refused, unless ``default_split`` names the split of all its rows (a table of
    images to predict on). Introduced in notebook 01."""
    table = pd.read_csv(path, dtype={"path": str, "split": str}, keep_default_na=True)
    if default_split is not None and "split" not in table.columns:
        table.insert(1 if "path" in table.columns else 0, "split", default_split)
    validate_table(table, source=f"dataset table {os.fspath(path)} (rows count from 0 after the header)")
    return table


def save_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a dataset table as CSV (no index; LF line ends), whole or not at all: an interrupted
    write never leaves a prefix that reads as a smaller table. Introduced in notebook 01."""
    validate_table(table)
    return outputs.write_csv(table, path, lineterminator="\n")  # whole or not at all
