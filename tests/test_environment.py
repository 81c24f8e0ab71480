"""One source of truth for dependencies: requirements.txt pins, everything else points at it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pinned_requirements() -> dict[str, Version]:
    pins = {}
    for number, line in enumerate((ROOT / "requirements.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"requirements.txt line {number}: '{line}' is not an exact pin (name==version)")
        pins[requirement.name.lower()] = Version(specifiers[0].version)
    return pins


def test_every_requirement_is_an_exact_pin():
    pins = pinned_requirements()
    assert {"torch", "torchvision", "jupyter-book", "papermill", "nbval", "pytest"} <= set(pins)


def test_environment_yml_points_at_the_pins_and_adds_nothing():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-r requirements.txt" in pip_section, "environment.yml must install requirements.txt"
    extras = [d for d in deps if isinstance(d, str) and d not in ("python=3.11", "pip")]
    assert not extras, f"environment.yml pins packages outside requirements.txt: {extras}"
    assert all(p in ("-r requirements.txt", "-e .") for p in pip_section), pip_section


def test_pyproject_ranges_admit_the_pins():
    """The package's ranges stay loose (GPU machines have older torch) but must admit our pins."""
    pins = pinned_requirements()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    for spec in declared:
        requirement = Requirement(spec)
        name = requirement.name.lower()
        assert name in pins, f"pyproject needs {name} but requirements.txt does not pin it"
        assert requirement.specifier.contains(pins[name]), (
            f"pyproject range {spec} excludes the pinned {name}=={pins[name]}")


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    assert re.search(r"^make test$", ci, re.M), ".ci/run must run `make test`"
    assert "make test" in readme and "make book" in readme


def test_installed_versions_match_the_pins():
    """The venv the tests run in is the pinned one (catches a stale .venv)."""
    from importlib.metadata import PackageNotFoundError, version

    mismatched = {}
    for name, pinned in pinned_requirements().items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            mismatched[name] = "missing"
            continue
        if installed.release != pinned.release or installed.pre != pinned.pre:
            mismatched[name] = f"{installed} != {pinned}"
    assert not mismatched, f"installed packages differ from requirements.txt: {mismatched} (run `make venv`)"
