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


#: The marker of every item that needs the course build: the tests that check the built book
#: (the ``book`` marker: its HTML, the browser check, the exercises on its runs) and nbval's
#: notebook cells, which load the runs the build trained instead of training them again.
COURSE_BUILD = "course_build"


def needs_the_course_build(item) -> bool:
    """Does ``item`` need the course build's outputs (its HTML or its trained runs)?"""
    return Path(item.path).resolve().parent == HERE / "notebooks" or item.get_closest_marker("book") is not None


def order_the_course_build_first(items) -> None:
    """Mark the items that need the course build ``course_build`` and put them first, in order.

    ``make test`` runs the suite in two pytest sessions, one after the other (Makefile): first
    ``-m course_build`` — the build (both cores: its training uses torch's default two threads,
    the same as ``make book``), then the browser check and nbval's cells on its runs — and then
    ``-m "not course_build"`` under pytest-xdist, one worker per core. A plain ``pytest`` runs
    everything in one session in the same order: build, then what reads it, then the rest.
    """
    chain = [item for item in items if needs_the_course_build(item)]
    rest = [item for item in items if not needs_the_course_build(item)]
    for item in chain:
        item.add_marker(getattr(pytest.mark, COURSE_BUILD))
    items[:] = chain + rest


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marker
def pytest_collection_modifyitems(config, items):
    order_the_course_build_first(items)
    config.stash[_ATTACHED] = attach_references(items)


def pytest_report_collectionfinish(config, start_path, items):
    attached = config.stash.get(_ATTACHED, 0)
    if attached:
        return f"nbval references: {attached} checked notebook cell(s) compared against tests/notebook_outputs/"
