"""The package's layers and the direction of its imports (read from the source with ``ast``).

``finefcace/`` holds the method flat at the top (what the paper defines), the bias-mitigation
methods it is compared with in ``finefcace/mitigation/`` (built on the method's modules), the
data in ``finefcace/sources/``, the training engine in ``finefcace/training/`` and the course's
helpers in ``finefcace/course/``. Imports only run downward: the method imports none of the
others; the mitigation methods import only the method; the data imports neither the engine nor
the course; the engine never imports the course.
Every import counts, also one inside a function or under ``TYPE_CHECKING``. A module added at
the top must be declared here as part of the method, so a new layer is a decision, not an
accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "finefcace"

#: The paper's method: the modules at the top of the package.
#: ``errors`` sits with them: the bad-input family every layer raises (the metrics need it); so
#: does ``outputs``, the one way every layer writes a file (whole or not at all).
METHOD = {"attention", "backbones", "errors", "metrics", "model", "mutual_learning", "outputs", "plots", "precision",
          "predict", "presets"}
#: The package's front door (``import finefcace``, ``python -m finefcace``): it gathers the public
#: names of the method, the data and the engine, never the course.
FRONT = {"__init__", "__main__"}

#: What each layer may not import.
FORBIDDEN = {
    "method": ("finefcace.mitigation", "finefcace.sources", "finefcace.training", "finefcace.course"),
    "mitigation": ("finefcace.sources", "finefcace.training", "finefcace.course"),
    "front": ("finefcace.course",),
    "sources": ("finefcace.training", "finefcace.course"),
    "training": ("finefcace.course",),
    "course": (),
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``finefcace/training/config.py`` -> ``finefcace.training.config`` (``__init__`` -> the package)."""
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(path: Path, package: Path = PACKAGE) -> str:
    """The layer of a module file: method, front, mitigation, sources, training or course."""
    relative = path.relative_to(package)
    if len(relative.parts) == 1:
        if relative.stem in FRONT:
            return "front"
        if relative.stem in METHOD:
            return "method"
        raise AssertionError(f"{path}: a new module at the top of the package: add it to METHOD in "
                             f"tests/test_layout.py if it is part of the method, or move it into the "
                             f"layer it belongs to (mitigation/, sources/, training/, course/)")
    if relative.parts[0] not in FORBIDDEN:
        raise AssertionError(f"{path}: a package folder that is no known layer ({', '.join(FORBIDDEN)})")
    return relative.parts[0]


def imported_modules(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """Every module ``path`` imports, as absolute dotted names with their line: ``from X import
    a`` gives ``X`` and ``X.a`` (``a`` may be a submodule); relative imports are resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path, package).split(".")
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.append((node.lineno, source))
            found += [(node.lineno, f"{source}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    """One line per import that runs upward: the module, the line, the import and the rule."""
    problems = {}
    for path in sorted(package.rglob("*.py")):
        layer = layer_of(path, package)
        for line, name in imported_modules(path, package):
            for forbidden in FORBIDDEN[layer]:
                if (name == forbidden or name.startswith(forbidden + ".")) and (path, line) not in problems:
                    problems[path, line] = (f"{module_name(path, package)} (line {line}, layer '{layer}') imports "
                                            f"{name}: the {layer} layer may not import {forbidden}")
    return sorted(problems.values())


def test_imports_only_run_downward():
    problems = violations()
    assert not problems, "imports that run upward:\n" + "\n".join(problems)


def test_every_layer_is_present_and_the_method_is_complete():
    tops = {p.stem for p in PACKAGE.glob("*.py")} - FRONT
    assert tops == METHOD, f"method modules declared {sorted(METHOD)}, found {sorted(tops)}"
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == {"mitigation", "sources", "training", "course"}


@pytest.mark.parametrize(("where", "source", "expected"), [
    ("model.py", "from finefcace.training.config import TrainConfig\n", "finefcace.model (line 1, layer 'method') imports "
                                                                          "finefcace.training.config"),
    ("model.py", "def f():\n    from finefcace import course\n", "finefcace.model (line 2, layer 'method') imports "
                                                                   "finefcace.course"),
    ("sources/table.py", "from ..training import trainer\n", "finefcace.sources.table (line 1, layer 'sources') "
                                                             "imports finefcace.training"),
    ("training/cli.py", "import finefcace.course.session\n", "finefcace.training.cli (line 1, layer 'training') "
                                                             "imports finefcace.course.session"),
    ("mitigation/group_dro.py", "from finefcace.training import loaders\n",
     "finefcace.mitigation.group_dro (line 1, layer 'mitigation') imports finefcace.training"),
    ("model.py", "from finefcace.mitigation import group_dro\n", "finefcace.model (line 1, layer 'method') imports "
                                                                 "finefcace.mitigation"),
])
def test_a_planted_upward_import_is_named(tmp_path, where, source, expected):
    """The check itself fails on an upward import, naming the module, the line and the import."""
    package = tmp_path / "finefcace"
    for folder in ("mitigation", "sources", "training", "course"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from finefcace.model import FineFACE\n")
    (package / "model.py").write_text("import torch\n")
    (package / where).write_text(source)
    problems = violations(package)
    assert len(problems) == 1 and problems[0].startswith(expected), problems
    (package / where).write_text("from finefcace import presets\n")
    assert violations(package) == []
