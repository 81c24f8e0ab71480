"""Stored notebooks carry no outputs and one typed `parameters` cell (style.md §5, §6).

The one exception: cells tagged `nbval-check-output` keep the reference text nbval compares
a fresh run against (nbval checks a cell only when its stored copy has an execution count and
outputs). Those references are stable text only — no images, no errors, nothing on stderr —
and are written by `scripts/refresh_notebook_references.py`, never by hand.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


CHECK_TAG = "nbval-check-output"


def _checked(cell) -> bool:
    return CHECK_TAG in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and not _checked(c)
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; clear them before committing"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_checked_cells_store_a_text_reference(path):
    """A `nbval-check-output` cell without a stored reference would silently not be checked."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not _checked(cell):
            continue
        where = f"{path.name}: cell {i} (tagged {CHECK_TAG})"
        assert cell.get("execution_count") is not None and cell.get("outputs"), \
            f"{where} has no stored reference; run scripts/refresh_notebook_references.py {path.relative_to(path.parents[1])}"
        for output in cell.outputs:
            assert output.output_type in ("stream", "execute_result", "display_data"), f"{where}: {output.output_type}"
            if output.output_type == "stream":
                assert output.name == "stdout", f"{where}: writes to {output.name}"
            else:
                assert set(output.get("data", {})) <= {"text/plain", "text/html"}, f"{where}: non-text output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_one_typed_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: needs exactly one cell tagged `parameters`, found {len(cells)}"
    assignments = [line for line in cells[0].source.splitlines()
                   if "=" in line and not line.lstrip().startswith("#")]
    untyped = [line for line in assignments if ":" not in line.split("=", 1)[0]]
    assert assignments and not untyped, f"{path.name}: annotate every parameter (`epochs: int = 3`): {untyped}"
