"""Hand nbval the reference outputs stored beside the notebooks (style.md §6: no outputs in git).

The notebooks under ``notebooks/`` are stored without outputs or execution counts. The cells
tagged ``nbval-check-output`` have their expected text in ``tests/notebook_outputs/<stem>.json``
(written by ``scripts/refresh_notebook_references.py``, which also reads the format). nbval
compares a cell only when its stored copy has an execution count, so for each such cell this
hook puts the sidecar's outputs and an execution count on the cell nbval collected, before
anything runs. A tagged cell without a reference, or with one stored for another source,
still runs (later cells need its variables) and then fails, naming the notebook, the cell and
the command that refreshes it: it is never silently left unchecked.

This file sits at the repository root so that it applies to ``pytest``, ``pytest notebooks/``
and ``pytest notebooks/X.ipynb`` alike (``tests/conftest.py`` only covers ``tests/``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _references_module():
    """``scripts/refresh_notebook_references.py``, the owner of the sidecar format."""
    name = "refresh_notebook_references"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _fail_after_running(item, message: str) -> None:
    run_cell = item.runtest

    def runtest():
        run_cell()
        pytest.fail(message, pytrace=False)

    item.runtest = runtest


def attach_references(items) -> int:
    """Give every tagged nbval cell of ``notebooks/`` its stored reference; returns how many got one.

    A cell left without one (missing or stale) is set to fail after it runs.
    """
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed or disabled (-p no:nbval): nothing to attach
        return 0
    references = _references_module()
    by_notebook: dict[Path, dict] = {}
    attached = 0
    for item in items:
        if not isinstance(item, IPyNbCell) or not references.is_checked(item.cell):
            continue
        notebook = Path(item.path).resolve()
        if notebook.parent != references.NOTEBOOKS:
            continue
        if notebook not in by_notebook:
            by_notebook[notebook] = references.read_references(notebook)
        stored = by_notebook[notebook]
        problem = references.reference_problem(notebook, item.cell_num, item.cell, stored)
        if problem:
            _fail_after_running(item, problem)
            continue
        item.cell.outputs = references.stored_outputs(stored[item.cell.get("id")])
        # nbval skips the comparison of a cell whose stored copy was never run.
        item.cell.execution_count = item.cell_num + 1
        attached += 1
    return attached


_ATTACHED = pytest.StashKey[int]()


def pytest_collection_modifyitems(config, items):
    config.stash[_ATTACHED] = attach_references(items)


def pytest_report_collectionfinish(config, start_path, items):
    attached = config.stash.get(_ATTACHED, 0)
    if attached:
        return f"nbval references: {attached} checked notebook cell(s) compared against tests/notebook_outputs/"
