"""Store the reference outputs nbval compares, and nothing else.

Notebooks are stored clean (no outputs, no execution counts) except the cells tagged
``nbval-check-output``: their outputs are deterministic (shapes, parameter counts, FLOPs,
group counts, metric values on fixed inputs) and ``pytest --nbval-lax`` compares a fresh run
against the text stored here. After changing such a cell, or the library behind it, run::

    python scripts/refresh_notebook_references.py                       # every notebook
    python scripts/refresh_notebook_references.py notebooks/02_experts.ipynb

Each notebook is executed with papermill with its own defaults (the quick profile), working
directory ``notebooks/`` (as nbval runs it); the outputs of the tagged cells are copied into
the stored notebook with their execution counts, every other cell is cleared. A tagged cell
that writes to stderr, shows an image, or fails is refused: its reference would not be
stable text. ``tests/test_notebooks_clean.py`` checks the result.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK_TAG = "nbval-check-output"
TEXT_TYPES = {"text/plain", "text/html"}


class ReferenceError(RuntimeError):
    """A tagged cell's output cannot serve as a stable reference."""


def reference_outputs(cell, notebook: str) -> list:
    """The outputs of an executed tagged cell, checked to be stable text."""
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
        stored = {"output_type": kind, "data": data, "metadata": {}}
        if kind == "execute_result":
            stored["execution_count"] = output.get("execution_count")
        outputs.append(stored)
    return outputs


def refresh(path: Path) -> int:
    """Execute ``path`` and store the references of its tagged cells; returns how many."""
    import nbformat
    import papermill

    stored = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as folder:
        executed_path = Path(folder) / path.name
        papermill.execute_notebook(str(path), str(executed_path), cwd=str(path.parent), kernel_name="python3",
                                   progress_bar=False, log_output=False)
        executed = {c.get("id"): c for c in nbformat.read(executed_path, as_version=4).cells}
    count = 0
    for cell in stored.cells:
        if cell.cell_type != "code":
            continue
        if CHECK_TAG in cell.get("metadata", {}).get("tags", []):
            run = executed[cell.get("id")]
            cell.outputs = [nbformat.from_dict(o) for o in reference_outputs(run, path.name)]
            cell.execution_count = run.get("execution_count")
            count += 1
        else:
            cell.outputs = []
            cell.execution_count = None
    stored.metadata.pop("papermill", None)
    nbformat.write(stored, path)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        try:
            count = refresh(path.resolve())
        except ReferenceError as error:
            print(f"[references] FAILED: {error}", file=sys.stderr)
            return 1
        print(f"[references] {path.name}: {count} checked cell(s) stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
