"""finefcace.course.parameters: the parameter check every course notebook runs after its parameters cell,
and the course's parameters and profiles agreeing with each other."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from finefcace.course import parameters
from finefcace.course.parameters import ParameterError, check_parameters
from finefcace.training.typecheck import check_value
from tests.course_fixtures import course_dir, namespace, write_notebook  # noqa: F401  (course_dir: a fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_declared_parameters_reads_the_parameters_cell(course_dir):
    assert parameters.declared_parameters(course_dir / "notebooks" / "02_b.ipynb") == {
        "learning_rate": "float", "names": "list[str]"}
    assert parameters.course_parameters(course_dir / "notebooks") == {
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
    assert parameters.project_root() == course_dir
    assert parameters.resolve_path("runs/quick") == course_dir / "runs" / "quick"
    assert parameters.resolve_path("/abs/path") == Path("/abs/path")
    assert parameters.resolve_path(None) is None


def test_the_check_works_in_a_real_kernel_under_papermill(course_dir):
    """End to end: papermill injects unannotated names; the check finds the unknown one."""
    papermill = pytest.importorskip("papermill")
    check = ("from finefcace.course.parameters import check_parameters\n"
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


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


PROFILES = sorted((ROOT / "configs").glob("*.yaml"))


def parameter_defaults(path: Path) -> dict[str, tuple[str, object]]:
    """{name: (annotation source, default value)} of a notebook's parameters cell."""
    import ast

    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    found = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.AnnAssign):
            found[node.target.id] = (ast.unparse(node.annotation), ast.literal_eval(node.value))
    return found


def course_profiles() -> list[Path]:
    """The notebook profiles of configs/ (the CLI-only training configs hold `method:`)."""
    import yaml

    return [p for p in PROFILES if "method" not in (yaml.safe_load(p.read_text()) or {})]


def test_a_parameter_shared_by_notebooks_has_one_type_and_one_default():
    seen: dict[str, tuple[str, str, object]] = {}
    for path in NOTEBOOKS:
        for name, (annotation, default) in parameter_defaults(path).items():
            if name in seen:
                first, annotation0, default0 = seen[name]
                assert (annotation, default) == (annotation0, default0), \
                    f"{name!r}: {first} declares {annotation0} = {default0!r}, {path.name} {annotation} = {default!r}"
            else:
                seen[name] = (path.name, annotation, default)


def test_the_quick_profile_is_the_notebooks_defaults():
    import yaml

    profile = yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())
    defaults = {}
    for path in NOTEBOOKS:
        defaults.update({k: v for k, (_, v) in parameter_defaults(path).items()})
    assert profile == defaults, "configs/quick.yaml must write out exactly the notebooks' defaults"


@pytest.mark.parametrize("profile", course_profiles(), ids=lambda p: p.name)
def test_every_profile_key_is_a_notebook_parameter_of_the_right_type(profile):
    import typing

    import yaml

    from finefcace.training.config import load_config, profile_values

    values = yaml.safe_load(profile.read_text())
    declared = {}
    for path in NOTEBOOKS:
        declared.update(parameter_defaults(path))
    namespace = {"Optional": typing.Optional}
    for key, value in values.items():
        assert key in declared, f"{profile.name}: {key!r} is declared by no notebook"
        annotation = eval(declared[key][0], namespace)  # noqa: S307 - our own notebooks' annotations
        assert check_value(value, annotation)[0], f"{profile.name}: {key}={value!r} is not {declared[key][0]}"
    load_config(profile_values(profile))  # the training keys make a valid TrainConfig (CLI --profile)


def test_there_are_the_promised_profiles():
    names = {p.name for p in course_profiles()}
    assert {"quick.yaml", "paper_fairface.yaml", "paper_celeba.yaml", "paper_densenet.yaml"} <= names
