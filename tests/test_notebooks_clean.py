"""Stored notebooks carry no outputs and one typed `parameters` cell (style.md §5, §6).

No exception: not even the cells tagged `nbval-check-output`. Their expected text lives in
`tests/notebook_outputs/<notebook stem>.json`, written by
`scripts/refresh_notebook_references.py` (never by hand) and handed to nbval by the root
`conftest.py`. Here: every tagged cell has a reference there, stored for its current source,
of stable text only (no images, no errors, nothing on stderr), and no reference is left for a
cell that no longer exists or is no longer tagged.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
spec = importlib.util.spec_from_file_location("refresh", ROOT / "scripts" / "refresh_notebook_references.py")
references = importlib.util.module_from_spec(spec)
spec.loader.exec_module(references)


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} carry outputs or execution counts; clear them before "
                       f"committing (`{references.refresh_command(path)}` strips them and stores the references)")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_checked_cells_have_a_fresh_text_reference(path):
    """A `nbval-check-output` cell without a reference for its source would not be checked."""
    nb = nbformat.read(path, as_version=4)
    stored = references.read_references(path)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    problems = [references.reference_problem(path, i, c, stored) for i, c in enumerate(code_cells)
                if references.is_checked(c)]
    assert not any(problems), "\n".join(p for p in problems if p)
    for cell in filter(references.is_checked, code_cells):
        where = f"{path.name}: cell {cell.id} (tagged {references.CHECK_TAG})"
        for output in stored[cell.id]["outputs"]:
            assert output["output_type"] in ("stream", "execute_result", "display_data"), f"{where}: {output}"
            if output["output_type"] == "stream":
                assert output["name"] == "stdout", f"{where}: writes to {output['name']}"
            else:
                assert set(output["data"]) <= references.TEXT_TYPES, f"{where}: non-text output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_reference_is_left_for_an_unchecked_cell(path):
    nb = nbformat.read(path, as_version=4)
    checked = {c.id for c in nb.cells if references.is_checked(c)}
    left = set(references.read_references(path)) - checked
    assert not left, (f"{references.sidecar_path(path).relative_to(ROOT)} holds references for cells {sorted(left)} "
                      f"that {path.name} no longer has or no longer tags; run `{references.refresh_command(path)}`")


def test_every_sidecar_belongs_to_a_notebook():
    names = {p.stem for p in NOTEBOOKS}
    orphans = [p.name for p in sorted(references.REFERENCES.glob("*.json")) if p.stem not in names]
    assert not orphans, f"tests/notebook_outputs/ holds references for notebooks that do not exist: {orphans}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_one_typed_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: needs exactly one cell tagged `parameters`, found {len(cells)}"
    assignments = [line for line in cells[0].source.splitlines()
                   if "=" in line and not line.lstrip().startswith("#")]
    untyped = [line for line in assignments if ":" not in line.split("=", 1)[0]]
    assert assignments and not untyped, f"{path.name}: annotate every parameter (`epochs: int = 3`): {untyped}"
