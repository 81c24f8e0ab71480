"""The root conftest.py hands nbval the references in tests/notebook_outputs/, and nbval compares them.

A throw-away project holding copies of the real ``conftest.py`` and
``scripts/refresh_notebook_references.py``, one small notebook stored clean, and its sidecar;
pytest runs it in a subprocess with nbval, as ``pytest notebooks/X.ipynb`` runs here. A wrong
reference must fail, and so must a tagged cell without a reference or with a stale one.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("refresh", ROOT / "scripts" / "refresh_notebook_references.py")
references = importlib.util.module_from_spec(spec)
spec.loader.exec_module(references)

CHECKED = {"tags": [references.CHECK_TAG]}


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(project),
                           "-c", str(project / "pytest.ini"), "-v", "--color=no", *args],
                          cwd=project, capture_output=True, text=True, timeout=300)


def executed(cell, *outputs):
    copy = nbformat.from_dict(dict(cell))
    copy.outputs = [nbformat.from_dict(o) for o in outputs]
    return copy


def stdout(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


@pytest.fixture
def project(tmp_path):
    pytest.importorskip("nbval")
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    shutil.copy(ROOT / "scripts" / "refresh_notebook_references.py", tmp_path / "scripts")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --nbval-lax --nbval-current-env\n")
    (tmp_path / "notebooks").mkdir()
    return tmp_path


def test_stored_references_are_compared_and_missing_or_stale_ones_fail(project):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x = 6"),
                nbformat.v4.new_code_cell("print(x * 7)", metadata=CHECKED),          # right reference
                nbformat.v4.new_code_cell("x * 2", metadata=CHECKED),                 # wrong reference
                nbformat.v4.new_code_cell("print('no reference')", metadata=CHECKED),  # none stored
                nbformat.v4.new_code_cell("print(x)", metadata=CHECKED),              # stored for another source
                nbformat.v4.new_code_cell("print(x)")]                                # unchecked
    path = project / "notebooks" / "tiny.ipynb"
    nbformat.write(nb, path)  # stored clean: every reference comes from the sidecar
    stale = executed(nb.cells[4], stdout("6\n"))
    stale.source = "print(x + 0)"
    references.write_references(path, [
        references.reference_entry(executed(nb.cells[1], stdout("42\n")), path.name),
        references.reference_entry(executed(nb.cells[2], {"output_type": "execute_result", "execution_count": 1,
                                                          "metadata": {}, "data": {"text/plain": "13"}}), path.name),
        references.reference_entry(stale, path.name),
    ], folder=project / "tests" / "notebook_outputs")

    result = run_pytest(project, "notebooks/tiny.ipynb")
    outcomes = dict(re.findall(r"tiny\S*::Cell (\d+) (PASSED|FAILED|ERROR)", result.stdout))
    assert outcomes == {"0": "PASSED", "1": "PASSED", "2": "FAILED", "3": "FAILED", "4": "FAILED", "5": "PASSED"}, \
        result.stdout + result.stderr
    assert "Cell outputs differ" in result.stdout and "'13' == '12'" in result.stdout
    assert "notebooks/tiny.ipynb, code cell 3 (id " in result.stdout and "has no reference output" in result.stdout
    assert "code cell 4" in result.stdout and "has a stale reference" in result.stdout
    assert "run `python scripts/refresh_notebook_references.py notebooks/tiny.ipynb`" in result.stdout
    assert "nbval references: 2 checked notebook cell(s)" in result.stdout


def test_every_checked_cell_of_the_course_gets_its_reference():
    """Collection only (chapters 3-6 train models): each tagged cell is handed a reference."""
    pytest.importorskip("nbval")
    tagged = sum(references.is_checked(c) for p in sorted(references.NOTEBOOKS.glob("*.ipynb"))
                 for c in nbformat.read(p, as_version=4).cells)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only",
                             "notebooks"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"nbval references: {tagged} checked notebook cell(s)" in result.stdout, result.stdout
