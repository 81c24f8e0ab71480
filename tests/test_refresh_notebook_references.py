"""scripts/refresh_notebook_references.py: only stable text becomes an nbval reference, stored beside the notebook."""

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
    assert kept[1] == {"output_type": "execute_result", "data": {"text/plain": "df", "text/html": "<table></table>"}}


def test_a_sidecar_entry_reads_back_as_the_outputs_nbval_compares(tmp_path):
    cell = executed_cell({"output_type": "stream", "name": "stdout", "text": "a\nb\n"},
                         {"output_type": "execute_result", "execution_count": 3, "metadata": {},
                          "data": {"text/plain": "x\ny"}})
    cell.id = "abc"
    entry = refresh.reference_entry(cell, "nb.ipynb")
    assert entry["id"] == "abc" and entry["source"] == ["print(model_shapes)"]
    assert entry["outputs"][0]["text"] == ["a\n", "b\n"]  # lines, so a changed reference diffs well
    refresh.write_references(tmp_path / "nb.ipynb", [entry], folder=tmp_path)
    stored = refresh.read_references(tmp_path / "nb.ipynb", folder=tmp_path)
    outputs = refresh.stored_outputs(stored["abc"])
    assert outputs[0]["text"] == "a\nb\n" and outputs[1]["data"] == {"text/plain": "x\ny"}
    assert refresh.reference_problem(tmp_path / "nb.ipynb", 0, cell, stored, folder=tmp_path) is None


def test_a_missing_or_stale_reference_names_the_cell_and_the_command(tmp_path):
    cell = executed_cell()
    cell.id = "abc"
    missing = refresh.reference_problem(tmp_path / "nb.ipynb", 4, cell, {}, folder=tmp_path)
    assert "nb.ipynb, code cell 4 (id 'abc'" in missing and "no reference output" in missing
    assert "scripts/refresh_notebook_references.py" in missing
    stale = {"abc": {"id": "abc", "source": ["print(old_name)"], "outputs": []}}
    assert "stale reference" in refresh.reference_problem(tmp_path / "nb.ipynb", 4, cell, stale, folder=tmp_path)


@pytest.mark.parametrize(("output", "message"), [
    ({"output_type": "stream", "name": "stderr", "text": "UserWarning: ..."}, "stderr"),
    ({"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}, "image/png"),
    ({"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}, "ValueError"),
])
def test_unstable_outputs_are_refused_with_the_cell_named(output, message):
    with pytest.raises(refresh.ReferenceError, match=message) as error:
        refresh.reference_outputs(executed_cell(output), "nb.ipynb")
    assert "nb.ipynb" in str(error.value) and "print(model_shapes)" in str(error.value)


def test_refresh_stores_references_in_the_sidecar_and_strips_the_notebook(tmp_path):
    pytest.importorskip("papermill")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("n: int = 2", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print('unchecked', n)"),
                nbformat.v4.new_code_cell("print('checked', n * n)", metadata={"tags": ["nbval-check-output"]})]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="old\n")]
    nb.cells[2].execution_count = 7
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    assert refresh.refresh(path, folder=tmp_path / "outputs") == 1
    stored = nbformat.read(path, as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in stored.cells)
    assert "papermill" not in stored.metadata
    references = refresh.read_references(path, folder=tmp_path / "outputs")
    assert list(references) == [stored.cells[2].id]
    assert references[stored.cells[2].id]["outputs"] == [{"output_type": "stream", "name": "stdout",
                                                           "text": ["checked 4\n"]}]
    assert references[stored.cells[2].id]["source"] == ["print('checked', n * n)"]
