"""Adapters: the official layouts of FairFace, UTKFace, LFWA+ and CelebA → one dataset table.

Each adapter reads the files exactly as their publishers ship them (spec/data.md) and returns
the table of :mod:`finefcace.data` (``path`` relative to ``root``, ``split``, targets,
protected attributes). Quirks of copies found in the wild are read correctly or refused with a
message naming the row and the fix — never mislabelled. With ``check_images=True`` (default)
every image of the table must exist, or ``FileNotFoundError`` names the missing paths;
``check_images=False`` reads labels only (e.g. to inspect label files without images).

Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .data import CELEBA_ATTRIBUTES, GENDERS, require_images

__all__ = [
    "SkippedRowsWarning", "fairface_table", "read_fairface_labels", "utkface_table",
    "parse_utkface_names", "lfwa_table", "read_lfwa_labels", "celeba_table",
    "read_celeba_attributes", "read_celeba_partition", "stratified_validation_split",
    "DATASETS", "dataset_table", "EXPECTED_COUNTS",
]


class SkippedRowsWarning(UserWarning):
    """Rows (or files) that an adapter could not label and left out; the message lists them."""


#: Sizes of the official releases, used by the ``data_prep`` checks.
EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    "fairface": {"train": 86_744, "val": 10_954},
    "utkface": {"files": 23_707, "malformed": 5},
    "lfwa": {"images": 13_143},
    "celeba": {"train": 162_770, "val": 19_867, "test": 19_962},
}


# --------------------------------------------------------------------------------------
# FairFace
# --------------------------------------------------------------------------------------

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


def _refuse(source: str, rows: list[tuple[int, object]], what: str, fix: str, total: int) -> None:
    shown = "; ".join(f"line {line}: {value!r}" for line, value in rows[:5])
    raise ValueError(f"{source}: {total} row(s) with {what} (first: {shown}). {fix}")


def read_fairface_labels(path: str | os.PathLike, split: str) -> pd.DataFrame:
    """Read one FairFace label CSV (``fairface_label_train.csv`` or ``_val.csv``).

    Returns columns ``file`` (``train/N.jpg``), ``age``, ``gender``, ``race``,
    ``service_test`` (bool). Handles CRLF, a UTF-8 BOM, surrounding spaces, a leading folder
    before ``train/``/``val/`` (e.g. ``fairface/``), spreadsheet-damaged ages (``9-Mar``,
    ``03-Sep`` → ``3-9``; ``19-Oct``, ``Oct-19`` → ``10-19``) and booleans (``TRUE``);
    anything else unexpected raises ``ValueError`` naming the line and the fix.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FairFace label file not found: {path} (download fairface_label_{split}.csv)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [c.strip() for c in frame.columns]
    expected = ["file", "age", "gender", "race", "service_test"]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; FairFace's header is {','.join(expected)} "
                         f"(found {list(frame.columns)})")
    frame = frame[expected].apply(lambda column: column.str.strip())
    line = np.arange(len(frame)) + 2  # 1-based file line (the header is line 1)
    source = str(path)

    files = frame["file"].str.replace("\\", "/", regex=False)
    match = files.str.extract(_FAIRFACE_FILE)
    bad = match[0].isna() | (match[0].str.lower() != split)
    if bad.any():
        rows = list(zip(line[bad.to_numpy()], frame.loc[bad, "file"]))
        _refuse(source, rows, f"a 'file' that is not '{split}/N.jpg'",
                f"Use the {split} label file for the {split} split; a row must name {split}/N.jpg.", int(bad.sum()))
    frame["file"] = split + "/" + match[1]

    ages = frame["age"].map(lambda a: _SPREADSHEET_AGES.get(a, a))
    bad = ~ages.isin(FAIRFACE_AGES)
    if bad.any():
        _refuse(source, list(zip(line[bad.to_numpy()], frame.loc[bad, "age"])), "an unknown age group",
                f"Expected one of {list(FAIRFACE_AGES)}. If the file went through a spreadsheet, download "
                f"the original CSV again (dates such as 9-Mar are repaired, other damage is not).", int(bad.sum()))
    frame["age"] = ages

    genders = frame["gender"].str.capitalize()
    bad = ~genders.isin(GENDERS)
    if bad.any():
        _refuse(source, list(zip(line[bad.to_numpy()], frame.loc[bad, "gender"])), "an unknown gender",
                "FairFace genders are Male and Female; fix or drop those rows.", int(bad.sum()))
    frame["gender"] = genders

    bad = ~frame["race"].isin(FAIRFACE_RACES)
    if bad.any():
        _refuse(source, list(zip(line[bad.to_numpy()], frame.loc[bad, "race"])), "an unknown race group",
                f"Expected one of {list(FAIRFACE_RACES)} (spelling and spaces as published).", int(bad.sum()))

    flags = frame["service_test"].str.lower().map(_BOOLEANS)
    bad = flags.isna()
    if bad.any():
        _refuse(source, list(zip(line[bad.to_numpy()], frame.loc[bad, "service_test"])),
                "a service_test value that is not True/False", "Fix those rows (True or False).", int(bad.sum()))
    frame["service_test"] = flags.astype(bool)
    duplicated = frame["file"].duplicated()
    if duplicated.any():
        _refuse(source, list(zip(line[duplicated.to_numpy()], frame.loc[duplicated, "file"])),
                "a file listed twice", "Remove the duplicated rows.", int(duplicated.sum()))
    return frame


def stratified_validation_split(
    groups: pd.DataFrame, fraction: float = 0.1, seed: int = 0
) -> np.ndarray:
    """Boolean mask choosing ``round(fraction·n_g)`` rows of every group g (rows of ``groups``
    with equal values), reproducibly from ``seed``. Used for FairFace's validation split
    (10 % of ``train``, race × gender stratified). Introduced in notebook 01.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(groups), dtype=bool)
    keys = groups.groupby(list(groups.columns), sort=True, dropna=False).ngroup().to_numpy()
    for key in range(keys.max() + 1 if len(keys) else 0):
        members = np.flatnonzero(keys == key)
        chosen = rng.permutation(members)[: int(round(fraction * len(members)))]
        mask[chosen] = True
    return mask


def _find_folder(root: Path, candidates: Iterable[str], marker: str) -> str | None:
    for name in candidates:
        if (root / name / marker).is_dir() if marker else (root / name).is_dir():
            return name
    return None


def fairface_table(
    root: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    images: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    check_images: bool = True,
) -> pd.DataFrame:
    """FairFace as a dataset table (spec/data.md protocol).

    ``test`` = FairFace's ``val`` (its test set was never released); ``val`` = a seeded,
    race × gender stratified ``val_fraction`` of ``train``; ``train`` = the rest.
    Labels are read from ``labels`` (default ``root``); images from ``root/images`` where
    ``images`` defaults to ``fairface-img-margin025-trainval`` (or the margin125 variant, or
    ``root`` itself if ``train/`` lies directly there). Columns: ``path``, ``split``,
    ``gender``, ``race`` (7 groups), ``age``, ``service_test``.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    root = Path(root)
    label_dir = Path(labels) if labels is not None else root
    train = read_fairface_labels(label_dir / "fairface_label_train.csv", "train")
    test = read_fairface_labels(label_dir / "fairface_label_val.csv", "val")
    if images is None:
        images = _find_folder(root, _FAIRFACE_IMAGE_FOLDERS, "train")
        if images is None:
            images = "" if (root / "train").is_dir() else _FAIRFACE_IMAGE_FOLDERS[0]
    prefix = f"{images.strip('/')}/" if images else ""
    validation = stratified_validation_split(train[["race", "gender"]], val_fraction, seed)
    train["split"] = np.where(validation, "val", "train")
    test["split"] = "test"
    table = pd.concat([train, test], ignore_index=True)
    table.insert(0, "path", prefix + table.pop("file"))
    table = table[["path", "split", "gender", "race", "age", "service_test"]]
    table.attrs["dataset"] = "fairface"
    if check_images:
        require_images(table, root)
    return table


# --------------------------------------------------------------------------------------
# UTKFace
# --------------------------------------------------------------------------------------

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
        images = _find_folder(root, _UTKFACE_FOLDERS, "") or ""
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


# --------------------------------------------------------------------------------------
# LFWA+
# --------------------------------------------------------------------------------------

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
        raise ValueError(f"{attributes_file} is not a MATLAB v7.3 (HDF5) file: {error}") from error
    with handle as mat:
        for key in ("AttrName", "label", "name"):
            if key not in mat:
                raise ValueError(f"{attributes_file}: no '{key}' variable (found {sorted(mat.keys())})")
        names = _mat_strings(mat, mat["AttrName"])
        images = [n.replace("\\", "/") for n in _mat_strings(mat, mat["name"])]
        labels = np.asarray(mat["label"])
    if labels.shape == (len(names), len(images)) and labels.shape[0] != labels.shape[1]:
        labels = labels.T  # MATLAB stores column-major: HDF5 shows A x N
    if labels.shape != (len(images), len(names)):
        raise ValueError(f"{attributes_file}: label matrix {labels.shape} does not match "
                         f"{len(images)} names x {len(names)} attributes")
    values = set(np.unique(labels).tolist())
    if values <= {-1.0, 1.0}:
        labels = (labels > 0)
    elif not values <= {0.0, 1.0}:
        raise ValueError(f"{attributes_file}: labels must be 0/1 (or -1/1), found {sorted(values)[:10]}")
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
                raise ValueError(f"{indices_file}: no '{key}' variable (found {sorted(mat.keys())})")
            index = np.asarray(mat[key]).ravel()
            if index.size and (index.min() < 1 or index.max() > count or np.any(index != np.round(index))):
                raise ValueError(f"{indices_file}: {key} must hold 1-based image numbers 1..{count}")
            out[split] = index.astype(np.int64) - 1
    if np.intersect1d(out["train"], out["test"]).size:
        raise ValueError(f"{indices_file}: some images are both in train and test")
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
        raise ValueError(
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


# --------------------------------------------------------------------------------------
# CelebA
# --------------------------------------------------------------------------------------

_CELEBA_SPLITS = {0: "train", 1: "val", 2: "test"}


def read_celeba_attributes(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``list_attr_celeba.txt``: line 1 the image count, line 2 the 40 names, then
    ``name v1 … v40`` with −1/1, space-padded, CRLF. Returns ``image`` + 40 int 0/1 columns.

    A count that disagrees with the rows (a truncated file) is reported in a warning; values
    other than −1/1 raise ``ValueError`` naming the line. Introduced in notebook 01.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CelebA attribute file not found: {path}")
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        declared = handle.readline().strip()
        names = handle.readline().split()
    if not declared.isdigit() or len(names) != 40:
        raise ValueError(f"{path}: expected line 1 = image count and line 2 = the 40 attribute names "
                         f"(got {declared!r} and {len(names)} names)")
    frame = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, names=["image", *names], dtype={"image": str},
                        engine="c")
    values = frame[names]
    bad = ~values.isin([-1, 1]).all(axis=1)
    if bad.any():
        lines = (np.flatnonzero(bad.to_numpy()) + 3)[:5].tolist()
        raise ValueError(f"{path}: {int(bad.sum())} row(s) with values other than -1/1 (lines {lines}); "
                         f"download the file again")
    frame[names] = (values.to_numpy() > 0).astype(np.int64)
    if int(declared) != len(frame):
        warnings.warn(f"{path}: line 1 declares {int(declared)} images but the file lists {len(frame)} "
                      f"(a partial copy?)", SkippedRowsWarning, stacklevel=2)
    return frame


def read_celeba_partition(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``list_eval_partition.txt`` (``name 0|1|2``, CRLF): ``image``, ``split``.

    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CelebA partition file not found: {path}")
    frame = pd.read_csv(path, sep=r"\s+", header=None, names=["image", "partition"], dtype={"image": str},
                        engine="c")
    bad = ~frame["partition"].isin(list(_CELEBA_SPLITS))
    if bad.any():
        lines = (np.flatnonzero(bad.to_numpy()) + 1)[:5].tolist()
        raise ValueError(f"{path}: partition values must be 0, 1 or 2 (lines {lines})")
    frame["split"] = frame.pop("partition").map(_CELEBA_SPLITS)
    return frame


def celeba_table(
    root: str | os.PathLike,
    *,
    attributes: str = "list_attr_celeba.txt",
    partition: str = "list_eval_partition.txt",
    images: str = "img_align_celeba",
    check_images: bool = True,
) -> pd.DataFrame:
    """CelebA as a dataset table: official partition (train 162,770 / val 19,867 / test
    19,962), the 40 attributes as 0/1 columns named as CelebA names them (the paper's 13 are
    :data:`~finefcace.data.CELEBA_ATTRIBUTES`), and ``gender`` from ``Male`` (protected
    attribute, and the gender target in cross-dataset tests). Images listed in the partition
    file but absent from the attribute file are left out with a warning.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    root = Path(root)
    labels = read_celeba_attributes(root / attributes)
    splits = read_celeba_partition(root / partition)
    table = labels.merge(splits, on="image", how="left", validate="one_to_one")
    missing = table["split"].isna()
    if missing.any():
        raise ValueError(f"{root / partition}: {int(missing.sum())} image(s) of the attribute file have no "
                         f"partition (first: {table.loc[missing, 'image'].head(5).tolist()})")
    unlabelled = len(splits) - len(table)
    if unlabelled:
        warnings.warn(f"CelebA: {unlabelled} image(s) of the partition file have no attributes and are left out",
                      SkippedRowsWarning, stacklevel=2)
    prefix = f"{images.strip('/')}/" if images else ""
    table.insert(0, "path", prefix + table.pop("image"))
    table.insert(1, "split", table.pop("split"))
    table.insert(2, "gender", np.where(table["Male"] == 1, GENDERS[1], GENDERS[0]))
    table.attrs["dataset"] = "celeba"
    absent = [a for a in (*CELEBA_ATTRIBUTES, "Male") if a not in table.columns]
    if absent:
        raise ValueError(f"{root / attributes}: attribute(s) {absent} missing from the header")
    if check_images:
        require_images(table, root)
    return table


#: Adapter per dataset name (``data_prep`` and notebooks dispatch on it).
DATASETS = {"fairface": fairface_table, "utkface": utkface_table, "lfwa": lfwa_table, "celeba": celeba_table}


def dataset_table(name: str, root: str | os.PathLike, **options) -> pd.DataFrame:
    """The table of dataset ``name`` (one of :data:`DATASETS`) from its official layout."""
    try:
        adapter = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)} (synthetic data is made by "
                         f"finefcace.synthetic.generate_synthetic)") from None
    return adapter(root, **options)
