"""Store the reference outputs nbval compares, beside the notebooks, never inside them.

Notebooks are stored clean: no outputs, no execution counts (style.md §6). The cells tagged
``nbval-check-output`` print deterministic text (shapes, parameter counts, FLOPs, group counts,
metric values on fixed inputs); their expected text lives in a sidecar,
``tests/notebook_outputs/<notebook stem>.json``, and the repository's ``conftest.py`` hands it
to nbval, so ``pytest --nbval-lax`` compares a fresh run against it. After changing such a cell,
or the library behind it, run::

    python scripts/refresh_notebook_references.py                       # every notebook
    python scripts/refresh_notebook_references.py notebooks/02_experts.ipynb

Each notebook is executed with papermill with its own defaults (the quick profile), working
directory ``notebooks/`` (as nbval runs it); the outputs of its tagged cells are written to the
sidecar, each with the cell's ``id`` and the source it was produced by (a reference stored for
another source is stale, and nbval fails on it), and every output is stripped from the stored
notebook. A tagged cell that writes to stderr, shows an image, or fails is refused: its
reference would not be stable text. ``tests/test_notebooks_clean.py`` checks the result.

The sidecar::

    {"notebook": "notebooks/02_experts.ipynb",
     "refresh": "python scripts/refresh_notebook_references.py notebooks/02_experts.ipynb",
     "cells": [{"id": "81405a88", "source": ["course.stage_table(...)"],
                "outputs": [{"output_type": "execute_result", "data": {"text/plain": [...]}}]}]}

Texts are stored as lists of lines, as in ``.ipynb`` files, so a changed reference reads as a
short diff. This module is also the one reader of the format (``conftest.py`` and the tests
import it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
REFERENCES = ROOT / "tests" / "notebook_outputs"
CHECK_TAG = "nbval-check-output"
TEXT_TYPES = {"text/plain", "text/html"}


class ReferenceError(RuntimeError):
    """A tagged cell's output cannot serve as a stable reference."""


def is_checked(cell) -> bool:
    """Whether nbval compares this cell's output (it is tagged ``nbval-check-output``)."""
    return cell.get("cell_type") == "code" and CHECK_TAG in cell.get("metadata", {}).get("tags", [])


def sidecar_path(notebook: Path, folder: Path = REFERENCES) -> Path:
    """Where the references of ``notebook`` are stored."""
    return Path(folder) / f"{Path(notebook).stem}.json"


def refresh_command(notebook: Path) -> str:
    """The command that rewrites the references of ``notebook``."""
    return f"python scripts/refresh_notebook_references.py {_relative(notebook)}"


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _joined(text) -> str:
    return "".join(text) if isinstance(text, list) else text


def reference_outputs(cell, notebook: str) -> list[dict]:
    """The outputs of an executed tagged cell, checked to be stable text (texts as strings)."""
    outputs = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        where = f"{notebook}, cell starting {cell.source.splitlines()[0][:60]!r}"
        if kind == "error":
            raise ReferenceError(f"{where}: raised {output.get('ename')}: {output.get('evalue')}")
        if kind == "stream":
            if output.get("name") != "stdout":
                raise ReferenceError(f"{where}: writes to {output.get('name')} ({output.get('text', '')[:200]!r}); "
                                     "a checked cell must print only stable text to stdout")
            outputs.append({"output_type": "stream", "name": "stdout", "text": output["text"]})
            continue
        data = dict(output.get("data", {}))
        extra = set(data) - TEXT_TYPES
        if extra:
            raise ReferenceError(f"{where}: shows {sorted(extra)}; a checked cell must show text only "
                                 "(move figures to an unchecked cell)")
        outputs.append({"output_type": kind, "data": data})
    return outputs


def reference_entry(cell, notebook: str) -> dict:
    """One sidecar entry: the cell's id and source, and its outputs, texts split into lines."""
    outputs = []
    for output in reference_outputs(cell, notebook):
        if "text" in output:
            output = {**output, "text": _lines(output["text"])}
        if "data" in output:
            output = {**output, "data": {kind: _lines(_joined(text)) for kind, text in output["data"].items()}}
        outputs.append(output)
    return {"id": cell.get("id"), "source": _lines(cell.source), "outputs": outputs}


def write_references(notebook: Path, entries: list[dict], folder: Path = REFERENCES) -> Path | None:
    """Write the sidecar of ``notebook`` (remove it when no cell is checked)."""
    path = sidecar_path(notebook, folder)
    if not entries:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = {"notebook": _relative(notebook), "refresh": refresh_command(notebook), "cells": entries}
    path.write_text(json.dumps(sidecar, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_references(notebook: Path, folder: Path = REFERENCES) -> dict[str, dict]:
    """The stored references of ``notebook`` by cell id; empty when it has no sidecar."""
    path = sidecar_path(notebook, folder)
    if not path.is_file():
        return {}
    return {entry["id"]: entry for entry in json.loads(path.read_text(encoding="utf-8"))["cells"]}


def reference_problem(notebook: Path, cell_number: int, cell, references: dict[str, dict],
                      folder: Path = REFERENCES) -> str | None:
    """Why a tagged cell cannot be checked (no reference, or one stored for another source), or None."""
    entry = references.get(cell.get("id"))
    where = f"{_relative(notebook)}, code cell {cell_number} (id {cell.get('id')!r}, tagged {CHECK_TAG})"
    sidecar = _relative(sidecar_path(notebook, folder))
    if entry is None:
        problem = f"has no reference output in {sidecar}"
    elif _joined(entry["source"]) != cell.source:
        problem = f"has a stale reference in {sidecar} (stored for another source)"
    else:
        return None
    return f"{where} {problem}; run `{refresh_command(notebook)}`"


def stored_outputs(entry: dict) -> list:
    """A sidecar entry's outputs as nbformat output nodes, the form nbval compares."""
    import nbformat

    outputs = []
    for output in entry["outputs"]:
        node = dict(output)
        if "text" in node:
            node["text"] = _joined(node["text"])
        if "data" in node:
            node["data"] = {kind: _joined(text) for kind, text in node["data"].items()}
            node.setdefault("metadata", {})
        if node["output_type"] == "execute_result":
            node.setdefault("execution_count", None)
        outputs.append(nbformat.from_dict(node))
    return outputs


def strip_outputs(nb) -> None:
    """Clear every code cell's outputs and execution count."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


def refresh(path: Path, folder: Path = REFERENCES) -> int:
    """Execute ``path``, store its tagged cells' references in the sidecar; returns how many."""
    import nbformat
    import papermill

    stored = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as scratch:
        executed_path = Path(scratch) / path.name
        papermill.execute_notebook(str(path), str(executed_path), cwd=str(path.parent), kernel_name="python3",
                                   progress_bar=False, log_output=False)
        executed = {c.get("id"): c for c in nbformat.read(executed_path, as_version=4).cells}
    entries = [reference_entry(executed[cell.get("id")], path.name) for cell in stored.cells if is_checked(cell)]
    write_references(path, entries, folder)
    strip_outputs(stored)
    stored.metadata.pop("papermill", None)
    nbformat.write(stored, path)
    return len(entries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        try:
            count = refresh(path.resolve())
        except ReferenceError as error:
            print(f"[references] FAILED: {error}", file=sys.stderr)
            return 1
        print(f"[references] {path.name}: {count} checked cell(s) stored in {_relative(sidecar_path(path))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
