"""One small table per dataset adapter, made by the adapter itself from a tiny copy of its
release layout (labels only): what the licence and model-card tests recognise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from finefcace.sources.celeba import celeba_table
from finefcace.sources.fairface import fairface_table
from finefcace.sources.lfwa import lfwa_table
from finefcace.sources.synthetic import synthetic_splits
from finefcace.sources.utkface import utkface_table
from tests.sources.layouts import fairface_layout, fairface_rows
from tests.sources.test_celeba import _celeba
from tests.sources.test_lfwa import _lfwa, _lfwa_labels
from tests.sources.test_utkface import UTK_GOOD


def synthetic_table() -> pd.DataFrame:
    """The synthetic faces' table (labels only: no image is rendered)."""
    tables = []
    for split, (sample, _) in synthetic_splits(n_train=8, n_val=4, n_test=8, seed=0).items():
        table = sample.labels.copy()
        table.insert(0, "split", split)
        table.insert(0, "path", [f"{split}/{i:06d}.png" for i in range(len(table))])
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def adapter_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """dataset name -> the table its adapter reads from a tiny layout under ``folder``."""
    fairface_layout(folder / "fairface", fairface_rows("train", 14), fairface_rows("val", 7, start=100), images=False)
    specs = [(1, {"White"}), (0, {"Black"}), (1, {"Asian"}), (0, {"Indian"}), (1, set()), (0, {"White"})]
    _lfwa(folder / "lfwa", _lfwa_labels(specs), [f"P_{i}/P_{i}_0001.jpg" for i in range(6)],
          train=[1, 2, 3], test=[4, 5, 6])
    _celeba(folder / "celeba", np.random.default_rng(0).choice([-1, 1], size=(4, 40)), [0, 1, 2, 2])
    return {
        "fairface": fairface_table(folder / "fairface", check_images=False),
        "utkface": utkface_table(folder / "utkface", filenames=UTK_GOOD, check_images=False),
        "lfwa": lfwa_table(folder / "lfwa", check_images=False),
        "celeba": celeba_table(folder / "celeba", check_images=False),
        "synthetic": synthetic_table(),
    }
