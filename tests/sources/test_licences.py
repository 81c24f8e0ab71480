"""Tests of finefcace/sources/licences.py: each adapter's table is recognised after a trip
through its CSV, and mapped to the licence that adapter states."""

from __future__ import annotations

import re
import tomllib
import warnings
from pathlib import Path

import pandas as pd
import pytest

from finefcace.sources import celeba, fairface, lfwa, synthetic, utkface
from finefcace.sources.licences import DATASET_LICENCES, UNKNOWN_LICENCE, data_licence, recognise_dataset
from finefcace.sources.table import load_table, save_table
from tests.sources.adapter_tables import adapter_tables

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = {"fairface": fairface, "utkface": utkface, "lfwa": lfwa, "celeba": celeba, "synthetic": synthetic}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Each adapter's table as the trainer reads it: written as CSV and read back."""
    folder = tmp_path_factory.mktemp("releases")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny layouts' skipped rows are the adapters' own tests' business
        made = adapter_tables(folder)
    return {name: load_table(save_table(table, folder / f"{name}.csv")) for name, table in made.items()}


def test_every_adapter_states_one_licence():
    assert DATASET_LICENCES == {name: module.LICENCE for name, module in ADAPTERS.items()}
    for name, licence in DATASET_LICENCES.items():
        assert isinstance(licence, str) and len(licence) > 20, name


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_a_table_is_mapped_to_its_adapters_licence(tables, name):
    assert recognise_dataset(tables[name]) == name
    licence = data_licence(tables[name])
    assert licence.dataset == name and licence.licence == ADAPTERS[name].LICENCE


def test_the_licences_say_what_their_publishers_say():
    assert fairface.LICENCE.startswith("CC BY 4.0")
    for module in (utkface, celeba):
        assert module.LICENCE.startswith("non-commercial research only")
    assert "no licence stated" in lfwa.LICENCE and "non-commercial research only" in lfwa.LICENCE


def test_the_synthetic_faces_come_under_the_repositorys_licence():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    repository = project["license"]["text"] if isinstance(project["license"], dict) else project["license"]
    assert re.match(rf"{re.escape(repository)}\b", synthetic.LICENCE), (repository, synthetic.LICENCE)


def test_a_table_no_adapter_wrote_gets_no_licence():
    table = pd.DataFrame({"path": ["a.jpg"], "split": ["test"], "gender": ["Male"], "race": ["Martian"]})
    licence = data_licence(table)
    assert recognise_dataset(table) is None and licence.dataset is None and licence.licence == UNKNOWN_LICENCE
    # another dataset's columns do not borrow a licence: FairFace's races without service_test are no FairFace
    assert recognise_dataset(table.assign(race="Latino_Hispanic", age=30)) is None
