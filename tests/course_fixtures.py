"""Fixtures and helpers shared by the tests of the course helpers (import them into a test module)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def course_dir(tmp_path: Path) -> Path:
    """A tiny course: notebooks/ with two notebooks and a _toc.yml (what project_root looks for)."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    write_notebook(tmp_path / "notebooks" / "01_a.ipynb", "epochs: int = 3\ntable: str | None = None")
    write_notebook(tmp_path / "notebooks" / "02_b.ipynb", "# comment\nlearning_rate: float = 0.1\nnames: list[str] = []")
    return tmp_path


def namespace(**values):
    """A kernel namespace as the parameters cell leaves it (annotations) plus injected values."""
    annotations = values.pop("__annotations__")
    space = {"__annotations__": annotations, "In": [], "Out": {}, "get_ipython": lambda: None, "json": json}
    space.update({name: default for name, (_, default) in annotations.items()})
    space["__annotations__"] = {name: kind for name, (kind, _) in annotations.items()}
    space.update(values)
    return space


@pytest.fixture(scope="module")
def small_models():
    import torch

    from finefcace.model import Baseline, FineFACE

    torch.manual_seed(0)
    return FineFACE("resnet18", 2, descriptor_dim=16), Baseline("resnet18", 2)
