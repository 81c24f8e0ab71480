"""LFWA+'s release (``lfw_att_73.mat``, ``indices_train_test.mat``, the ``lfw/`` images) →
the dataset table: gender, race derived from the race flags, the 73 attributes (paper §4.1).

Column positions are checked against the file's ``AttrName`` every time it is read.
Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from finefcace.errors import DataError
from finefcace.sources.images import require_images
from finefcace.sources.releases import SkippedRowsWarning
from finefcace.sources.table import GENDERS

__all__ = ["LFWA_COLUMNS", "LFWA_RACES", "LICENCE", "lfwa_table", "read_lfwa_labels"]

#: The terms LFWA+ comes under (a run trained on it says so in its model card). LFW states no
#: licence, so the card says that instead of guessing one.
LICENCE = ("no licence stated for the LFW images (Huang et al. 2007: news photographs collected from the web, "
           "published for research; their copyright stays with their owners); the LFWA+ attribute labels "
           "(Liu et al., ICCV 2015) are released for non-commercial research only: treat the whole as "
           "non-commercial research only")


#: Column positions of the 73-attribute LFWA+ label matrix used by public loaders; checked
#: against ``AttrName`` every time the file is read.
LFWA_COLUMNS: dict[str, int] = {"Male": 0, "Asian": 1, "White": 2, "Black": 3, "Indian": 57}
LFWA_RACES: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Undefined")


def _mat_strings(file, dataset) -> list[str]:
    """MATLAB v7.3 cell array of char arrays → Python strings."""
    import h5py

    out = []
    for ref in np.asarray(dataset).ravel():
        item = file[ref] if isinstance(ref, h5py.Reference) else ref
        codes = np.asarray(item).ravel()
        out.append("".join(chr(int(c)) for c in codes))
    return out


def read_lfwa_labels(attributes_file: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """Read ``lfw_att_73.mat`` (MATLAB v7.3 = HDF5) with h5py.

    Returns (attribute names, image names with ``/`` separators, labels (N, A) int).
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    import h5py

    attributes_file = Path(attributes_file)
    if not attributes_file.is_file():
        raise FileNotFoundError(f"LFWA+ attribute file not found: {attributes_file}")
    try:
        handle = h5py.File(attributes_file, "r")
    except OSError as error:
        raise DataError(f"{attributes_file} is not a MATLAB v7.3 (HDF5) file: {error}") from error
    with handle as mat:
        for key in ("AttrName", "label", "name"):
            if key not in mat:
                raise DataError(f"{attributes_file}: no '{key}' variable (found {sorted(mat.keys())})")
        names = _mat_strings(mat, mat["AttrName"])
        images = [n.replace("\\", "/") for n in _mat_strings(mat, mat["name"])]
        labels = np.asarray(mat["label"])
    if labels.shape == (len(names), len(images)) and labels.shape[0] != labels.shape[1]:
        labels = labels.T  # MATLAB stores column-major: HDF5 shows A x N
    if labels.shape != (len(images), len(names)):
        raise DataError(f"{attributes_file}: label matrix {labels.shape} does not match "
                         f"{len(images)} names x {len(names)} attributes")
    values = set(np.unique(labels).tolist())
    if values <= {-1.0, 1.0}:
        labels = (labels > 0)
    elif not values <= {0.0, 1.0}:
        raise DataError(f"{attributes_file}: labels must be 0/1 (or -1/1), found {sorted(values)[:10]}")
    return names, images, labels.astype(np.int64)


def _read_lfwa_indices(indices_file: Path, count: int) -> dict[str, np.ndarray]:
    import h5py

    if not indices_file.is_file():
        raise FileNotFoundError(f"LFWA+ split file not found: {indices_file} (pass indices=None to label "
                                f"every image 'test')")
    with h5py.File(indices_file, "r") as mat:
        out = {}
        for split, key in (("train", "indices_img_train"), ("test", "indices_img_test")):
            if key not in mat:
                raise DataError(f"{indices_file}: no '{key}' variable (found {sorted(mat.keys())})")
            index = np.asarray(mat[key]).ravel()
            if index.size and (index.min() < 1 or index.max() > count or np.any(index != np.round(index))):
                raise DataError(f"{indices_file}: {key} must hold 1-based image numbers 1..{count}")
            out[split] = index.astype(np.int64) - 1
    if np.intersect1d(out["train"], out["test"]).size:
        raise DataError(f"{indices_file}: some images are both in train and test")
    return out


def lfwa_table(
    root: str | os.PathLike,
    *,
    attributes: str = "lfw_att_73.mat",
    indices: str | None = "indices_train_test.mat",
    images: str = "lfw",
    check_images: bool = True,
) -> pd.DataFrame:
    """LFWA+ as a dataset table: ``gender`` from ``Male``, ``race`` derived from the four race
    flags (Asian, White, Black, Indian; none → ``Undefined``; more than one → ``Undefined``,
    counted in a warning). Column positions are verified against ``AttrName``.
    ``split`` from ``indices_train_test.mat`` (1-based; images in neither are dropped with a
    warning), or ``test`` for every image when ``indices=None``. Columns: ``path``, ``split``,
    ``gender``, ``race``, then the 73 attributes (0/1) under their LFWA+ names.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    root = Path(root)
    names, files, labels = read_lfwa_labels(root / attributes)
    wrong = {name: (names[i] if i < len(names) else None) for name, i in LFWA_COLUMNS.items()
             if i >= len(names) or names[i].strip().lower() != name.lower()}
    if wrong:
        raise DataError(
            f"{root / attributes}: attribute columns disagree with the expected LFWA+ layout "
            f"(expected name -> name found at its position: {wrong}); this is not the 73-attribute "
            f"lfw_att_73.mat the adapter knows"
        )
    race_flags = labels[:, [LFWA_COLUMNS[r] for r in ("White", "Black", "Asian", "Indian")]]
    count = race_flags.sum(axis=1)
    race = np.where(count == 1, np.asarray(["White", "Black", "Asian", "Indian"])[race_flags.argmax(axis=1)],
                    "Undefined")
    if (count > 1).any():
        warnings.warn(f"LFWA+: {int((count > 1).sum())} image(s) carry more than one race flag; their race "
                      f"group is 'Undefined'", SkippedRowsWarning, stacklevel=2)
    files = [f[len("lfw/"):] if f.lower().startswith("lfw/") else f for f in files]
    prefix = f"{images.strip('/')}/" if images else ""
    table = pd.DataFrame({
        "path": [prefix + f for f in files],
        "split": "test",
        "gender": np.where(labels[:, LFWA_COLUMNS["Male"]] == 1, GENDERS[1], GENDERS[0]),
        "race": race,
    })
    attributes_frame = pd.DataFrame(labels, columns=[n.strip() for n in names])
    table = pd.concat([table, attributes_frame.drop(columns=[c for c in attributes_frame if c in table])], axis=1)
    if indices is not None:
        split_index = _read_lfwa_indices(root / indices, len(table))
        split = np.full(len(table), "", dtype=object)
        split[split_index["train"]] = "train"
        split[split_index["test"]] = "test"
        table["split"] = split
        unused = table["split"] == ""
        if unused.any():
            warnings.warn(f"LFWA+: {int(unused.sum())} image(s) are in neither train nor test indices and were "
                          f"left out (first: {table.loc[unused, 'path'].head(5).tolist()})",
                          SkippedRowsWarning, stacklevel=2)
            table = table[~unused].reset_index(drop=True)
    table.attrs["dataset"] = "lfwa"
    if check_images:
        require_images(table, root)
    return table
