"""finefcace.notebook: the parameter check every course notebook runs after its parameters cell."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from finefcace import notebook as course
from finefcace.notebook import ParameterError, check_parameters

ROOT = Path(__file__).resolve().parents[1]


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


def test_declared_parameters_reads_the_parameters_cell(course_dir):
    assert course.declared_parameters(course_dir / "notebooks" / "02_b.ipynb") == {
        "learning_rate": "float", "names": "list[str]"}
    assert course.course_parameters(course_dir / "notebooks") == {
        "epochs": ["01_a"], "table": ["01_a"], "learning_rate": ["02_b"], "names": ["02_b"]}


def test_defaults_and_good_values_pass_and_are_returned(course_dir):
    space = namespace(__annotations__={"epochs": (int, 3), "rate": (float, 0.5), "table": (str | None, None),
                                       "names": (list[str], ["a"]), "opts": (dict, {})},
                      rate=1)  # an int is a fine float
    values = check_parameters(space, notebooks_dir=course_dir / "notebooks")
    assert values == {"epochs": 3, "rate": 1, "table": None, "names": ["a"], "opts": {}}


def test_unknown_name_is_refused_with_the_close_name(course_dir):
    space = namespace(__annotations__={"epochs": (int, 3)}, epoch=5)
    with pytest.raises(ParameterError) as error:
        check_parameters(space, notebooks_dir=course_dir / "notebooks")
    message = str(error.value)
    assert "'epoch'" in message and "did you mean 'epochs'" in message and "configs/" in message


def test_names_declared_by_other_course_notebooks_are_accepted(course_dir):
    """One profile serves the whole chain: another chapter's key is not an error here."""
    space = namespace(__annotations__={"epochs": (int, 3)}, learning_rate=0.01, names=["x"])
    assert check_parameters(space, notebooks_dir=course_dir / "notebooks") == {"epochs": 3}


@pytest.mark.parametrize(("kind", "value", "expected"), [
    (int, "3", "write numbers"),
    (int, True, "must be int"),
    (bool, 1, "must be bool"),
    (list[str], "a", "a list of str"),
    (list[int], [1, "2"], "a list of int"),
    (str | None, 3, "str or null"),
    (dict[str, int], {"a": "b"}, "a mapping"),
])
def test_wrong_types_are_named(course_dir, kind, value, expected):
    space = namespace(__annotations__={"p": (kind, None)}, p=value)
    with pytest.raises(ParameterError) as error:
        check_parameters(space, notebooks_dir=course_dir / "notebooks")
    assert "'p'" in str(error.value) and expected in str(error.value)


def test_missing_path_names_the_parameter_the_path_and_the_fix(course_dir, monkeypatch):
    monkeypatch.chdir(course_dir / "notebooks")
    space = namespace(__annotations__={"dataset_dir": (str | None, None)}, dataset_dir="data/fairface")
    with pytest.raises(ParameterError) as error:
        check_parameters(space, existing_paths=["dataset_dir"], notebooks_dir=course_dir / "notebooks")
    message = str(error.value)
    assert "'dataset_dir'" in message and str(course_dir / "data" / "fairface") in message
    assert "project root" in message
    (course_dir / "data" / "fairface").mkdir(parents=True)
    assert check_parameters(space, existing_paths=["dataset_dir"], notebooks_dir=course_dir / "notebooks")


def test_none_paths_are_not_checked(course_dir):
    space = namespace(__annotations__={"dataset_dir": (str | None, None)})
    check_parameters(space, existing_paths=["dataset_dir"], notebooks_dir=course_dir / "notebooks")


def test_a_cell_without_annotations_is_refused():
    with pytest.raises(ParameterError, match="annotated"):
        check_parameters({"epochs": 3})


def test_project_root_is_found_from_notebooks_and_paths_resolve_from_it(course_dir, monkeypatch):
    monkeypatch.chdir(course_dir / "notebooks")
    assert course.project_root() == course_dir
    assert course.resolve_path("runs/quick") == course_dir / "runs" / "quick"
    assert course.resolve_path("/abs/path") == Path("/abs/path")
    assert course.resolve_path(None) is None


def test_the_check_works_in_a_real_kernel_under_papermill(course_dir):
    """End to end: papermill injects unannotated names; the check finds the unknown one."""
    papermill = pytest.importorskip("papermill")
    check = ("from finefcace.notebook import check_parameters\n"
             f"print(sorted(check_parameters(globals(), notebooks_dir={str(course_dir / 'notebooks')!r})))")
    source = write_notebook(course_dir / "notebooks" / "03_c.ipynb", "epochs: int = 3\nseed: int = 0", check)
    out = course_dir / "out.ipynb"
    papermill.execute_notebook(str(source), str(out), parameters={"epochs": 4, "learning_rate": 0.2},
                               kernel_name="python3", progress_bar=False, cwd=str(course_dir / "notebooks"))
    text = "".join(o.get("text", "") for o in nbformat.read(out, as_version=4).cells[-1].outputs)
    assert "['epochs', 'seed']" in text
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(str(source), str(out), parameters={"epoches": 4}, kernel_name="python3",
                                   progress_bar=False, cwd=str(course_dir / "notebooks"))
    assert "ParameterError" in str(error.value) and "did you mean 'epochs'" in str(error.value)
