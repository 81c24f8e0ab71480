"""Which dataset a table holds, and the terms that dataset is published under.

A run's model card (:mod:`finefcace.training.model_card`) states the licence of the data the
model was trained on. Each adapter states its dataset's terms in one constant, ``LICENCE``
(:mod:`~finefcace.sources.fairface`, :mod:`~finefcace.sources.utkface`,
:mod:`~finefcace.sources.lfwa`, :mod:`~finefcace.sources.celeba`,
:mod:`~finefcace.sources.synthetic`); this module gathers them (:data:`DATASET_LICENCES`) and
maps a run's data to them (:func:`data_licence`).

A dataset table on disk does not carry its dataset's name (an adapter's in-memory
``table.attrs["dataset"]`` is lost in the CSV), so the dataset is recognised from the columns
and values only its adapter writes (:func:`recognise_dataset`); a table none of them wrote is
reported as such, never given a licence it may not have. Introduced in the book in
``book/labels.md`` (consent and licences) and ``notebooks/04_training.ipynb`` (the model card).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from finefcace.sources import celeba, fairface, lfwa, synthetic, utkface

__all__ = ["DATASET_LICENCES", "DATASET_NAMES", "DataLicence", "UNKNOWN_LICENCE", "data_licence",
           "recognise_dataset"]

#: Each dataset's licence, as its adapter states it.
DATASET_LICENCES: dict[str, str] = {
    "fairface": fairface.LICENCE,
    "utkface": utkface.LICENCE,
    "lfwa": lfwa.LICENCE,
    "celeba": celeba.LICENCE,
    "synthetic": synthetic.LICENCE,
}
#: The datasets' names as the book writes them.
DATASET_NAMES: dict[str, str] = {
    "fairface": "FairFace", "utkface": "UTKFace", "lfwa": "LFWA+", "celeba": "CelebA",
    "synthetic": "the synthetic faces",
}
#: What a card says when no adapter wrote the table.
UNKNOWN_LICENCE = ("unknown: the dataset table matches none of the course's adapters (FairFace, UTKFace, LFWA+, "
                   "CelebA, the synthetic faces); state the licence of the data you trained on yourself")


@dataclass(frozen=True)
class DataLicence:
    """The dataset a table holds (``None``: not recognised), its name in words, and its licence."""

    dataset: str | None
    name: str
    licence: str


def _values(table: pd.DataFrame, column: str) -> set[str]:
    return {str(v) for v in table[column].dropna().unique()}


def recognise_dataset(table: pd.DataFrame) -> str | None:
    """The adapter that wrote ``table`` (a key of :data:`DATASET_LICENCES`), from what only it
    writes, or ``None``:

    - ``tone`` (a rendering parameter): the synthetic faces;
    - ``service_test``: FairFace;
    - ``Male`` and no ``race``: CelebA (its 40 attributes; it has no race labels);
    - ``race`` within LFWA+'s groups (``Undefined``) and LFWA+'s race flags as columns: LFWA+;
    - ``race`` within UTKFace's five groups (``Others``) and ``age``: UTKFace.
    """
    columns = set(table.columns)
    if "tone" in columns and _values(table, "tone") <= set(synthetic.TONES):
        return "synthetic"
    if "service_test" in columns and "race" in columns and _values(table, "race") <= set(fairface.FAIRFACE_RACES):
        return "fairface"
    if "race" not in columns and {"Male", *celeba.CELEBA_ATTRIBUTES} <= columns:
        return "celeba"
    if "race" in columns and _values(table, "race") <= set(lfwa.LFWA_RACES) and set(lfwa.LFWA_COLUMNS) <= columns:
        return "lfwa"
    if {"race", "age"} <= columns and _values(table, "race") <= set(utkface.UTKFACE_RACES):
        return "utkface"
    return None


def data_licence(table: pd.DataFrame) -> DataLicence:
    """The licence of the data in ``table`` (a run's dataset table): its adapter's ``LICENCE``,
    or :data:`UNKNOWN_LICENCE` when no adapter wrote it. Book: ``notebooks/04_training.ipynb``."""
    dataset = recognise_dataset(table)
    if dataset is None:
        return DataLicence(None, "a dataset the course does not know", UNKNOWN_LICENCE)
    return DataLicence(dataset, DATASET_NAMES[dataset], DATASET_LICENCES[dataset])
