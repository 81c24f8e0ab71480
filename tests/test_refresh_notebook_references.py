"""scripts/refresh_notebook_references.py: only stable text becomes an nbval reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("refresh", ROOT / "scripts" / "refresh_notebook_references.py")
refresh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(refresh)


def executed_cell(*outputs):
    cell = nbformat.v4.new_code_cell("print(model_shapes)", metadata={"tags": ["nbval-check-output"]})
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


def test_stdout_and_text_results_are_kept_without_metadata():
    cell = executed_cell(
        {"output_type": "stream", "name": "stdout", "text": "(4, 2)\n"},
        {"output_type": "execute_result", "execution_count": 3, "metadata": {"x": 1},
         "data": {"text/plain": "df", "text/html": "<table></table>"}})
    kept = refresh.reference_outputs(cell, "nb.ipynb")
    assert kept[0] == {"output_type": "stream", "name": "stdout", "text": "(4, 2)\n"}
    assert kept[1] == {"output_type": "execute_result", "execution_count": 3, "metadata": {},
                       "data": {"text/plain": "df", "text/html": "<table></table>"}}


@pytest.mark.parametrize(("output", "message"), [
    ({"output_type": "stream", "name": "stderr", "text": "UserWarning: ..."}, "stderr"),
    ({"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}, "image/png"),
    ({"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}, "ValueError"),
])
def test_unstable_outputs_are_refused_with_the_cell_named(output, message):
    with pytest.raises(refresh.ReferenceError, match=message) as error:
        refresh.reference_outputs(executed_cell(output), "nb.ipynb")
    assert "nb.ipynb" in str(error.value) and "print(model_shapes)" in str(error.value)


def test_refresh_stores_references_only_in_checked_cells(tmp_path):
    pytest.importorskip("papermill")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("n: int = 2", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print('unchecked', n)"),
                nbformat.v4.new_code_cell("print('checked', n * n)", metadata={"tags": ["nbval-check-output"]})]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    assert refresh.refresh(path) == 1
    stored = nbformat.read(path, as_version=4)
    assert stored.cells[1].outputs == [] and stored.cells[1].execution_count is None
    assert stored.cells[2].outputs[0]["text"] == "checked 4\n" and stored.cells[2].execution_count is not None
    assert "papermill" not in stored.metadata
