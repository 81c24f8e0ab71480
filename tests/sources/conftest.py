"""Fixtures shared by the tests of :mod:`finefcace.sources`."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.sources.fixtures import face_image


@pytest.fixture
def image_root(tmp_path):
    """Six small images and their table (two per split)."""
    rows = []
    for i in range(6):
        split = ("train", "val", "test")[i // 2]
        path = f"imgs/{split}/{i}.png"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        face_image(seed=i).save(tmp_path / path)
        rows.append({"path": path, "split": split, "gender": ("Female", "Male")[i % 2],
                     "tone": f"tone_{i % 4 + 1}", "Smiling": i % 2})
    return tmp_path, pd.DataFrame(rows)
