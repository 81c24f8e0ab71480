"""A notebook's parameters, checked before anything runs: the course's input gate.

No paper section: this is the course's own machinery (style.md §5, one typed ``parameters``
cell per notebook). Introduced in ``notebooks/01_dataset_preparation.ipynb``; every chapter
runs it through :func:`finefcace.course.session.start`, right after its ``parameters`` cell.

An unknown parameter name (a typo in a profile file or a ``-p`` option), a value of the wrong
type, or a dataset path that does not exist fails here, with a message naming the parameter,
the close names and the fix, before anything is read or trained. How: the annotated
assignments of the ``parameters`` cell (``epochs: int = 3``) fill the kernel's
``__annotations__``, while papermill's injected cell assigns without annotations; so a name
that is not annotated was injected, and is accepted only when another course notebook
declares it (one profile serves the whole chain). Relative paths are taken from
:func:`project_root`, whichever directory a notebook or the CLI runs in.
"""

from __future__ import annotations

import ast
import difflib
import json
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from finefcace.errors import UserError
from finefcace.training.typecheck import check_value, type_message

__all__ = [
    "ParameterError",
    "check_parameters",
    "course_parameters",
    "declared_parameters",
    "project_root",
    "resolve_path",
]


#: Names IPython puts in a kernel's namespace (besides underscored ones), never parameters.
_KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


class ParameterError(UserError):
    """A notebook parameter is unknown, of the wrong type, or names a path that does not exist."""


def project_root(start: str | Path | None = None) -> Path:
    """The course's root folder (the one holding ``notebooks/`` and ``_toc.yml``).

    Searched upward from ``start`` (default: the working directory, which is ``notebooks/``
    under papermill and nbval), then from this package's folder (an editable install).
    Relative paths in the profiles (``data/synthetic/labels.csv``, ``runs/quick``) are
    relative to this folder, whichever directory a notebook or the CLI runs in.
    """
    candidates = [Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parent]
    for candidate in candidates:
        for folder in (candidate, *candidate.parents):
            if (folder / "notebooks").is_dir() and (folder / "_toc.yml").is_file():
                return folder
    return Path(start or Path.cwd()).resolve()


def resolve_path(path: str | Path | None, root: str | Path | None = None) -> Path | None:
    """``path`` as an absolute path: relative paths are taken from :func:`project_root`."""
    if path is None:
        return None
    path = Path(path).expanduser()
    return path if path.is_absolute() else (Path(root) if root else project_root()) / path


def declared_parameters(notebook: str | Path) -> dict[str, str]:
    """The parameters a notebook declares: ``{name: annotation source}`` from its one cell
    tagged ``parameters`` (annotated assignments; plain assignments get ``""``).

    Read with ``json`` and ``ast`` only, so this works without papermill or nbformat.
    """
    notebook = Path(notebook)
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    found = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(found) != 1:
        raise ParameterError(f"{notebook.name}: needs exactly one cell tagged 'parameters', found {len(found)}")
    source = found[0]["source"]
    source = "".join(source) if isinstance(source, list) else source
    declared: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared[node.target.id] = ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    declared.setdefault(target.id, "")
    return declared


def course_parameters(notebooks_dir: str | Path | None = None) -> dict[str, list[str]]:
    """Every parameter name declared by the course's notebooks -> the notebooks declaring it."""
    folder = Path(notebooks_dir) if notebooks_dir else project_root() / "notebooks"
    names: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.ipynb")):
        try:
            declared = declared_parameters(path)
        except (ParameterError, ValueError, SyntaxError, KeyError):
            continue  # a notebook under construction does not block the others
        for name in declared:
            names.setdefault(name, []).append(path.stem)
    return names


def check_parameters(
    namespace: Mapping[str, Any],
    *,
    existing_paths: Iterable[str] | Mapping[str, str] = (),
    notebooks_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Check a notebook's parameters right after its ``parameters`` cell; raise
    :class:`ParameterError` naming the parameter and the fix.

    - every name papermill injected must be declared by this notebook or by another course
      notebook (a whole-course profile carries the others' keys; they are ignored here);
      unknown names are refused with the close names;
    - every declared parameter's value must match its annotation (``int``, ``float`` (an int
      is fine), ``str``, ``bool``, ``X | None``, ``list[X]``, ``dict[K, V]``, ``Literal``);
    - each parameter in ``existing_paths`` that is not ``None`` must name an existing file or
      folder (relative paths from :func:`project_root`); a mapping parameter (e.g.
      ``cross_datasets``) must hold existing paths as values. ``existing_paths`` may map each
      name to the fix the message should suggest.

    Returns this notebook's parameters and their values. Call it as
    ``check_parameters(globals())``. Book: ``notebooks/01_dataset_preparation.ipynb``.
    """
    annotations = dict(namespace.get("__annotations__", {}))
    if not annotations:
        raise ParameterError(
            "this notebook's parameters cell declares no annotated parameters: write them as "
            "`epochs: int = 3` so they can be checked (and listed by `papermill --help-notebook`)")
    hidden = set(_KERNEL_NAMES)
    shell = namespace.get("get_ipython")
    if callable(shell):
        try:
            hidden |= set(shell().user_ns_hidden)
        except Exception:  # noqa: BLE001 - outside a kernel: the fixed list is enough
            pass
    injected = [
        name for name, value in namespace.items()
        if name not in annotations and not name.startswith("_") and name not in hidden
        and not isinstance(value, types.ModuleType) and not callable(value)
    ]
    if injected:
        elsewhere = course_parameters(notebooks_dir)
        unknown = [name for name in injected if name not in elsewhere]
        if unknown:
            raise ParameterError(_unknown_message(unknown, annotations, elsewhere))
    values = {}
    for name, annotation in annotations.items():
        if name not in namespace:
            raise ParameterError(f"parameter {name!r} is declared but has no value: give it a default")
        value = namespace[name]
        if not check_value(value, annotation)[0]:
            raise ParameterError(type_message(f"parameter {name!r}", name, value, annotation, "the profile file"))
        values[name] = value
    fixes = dict(existing_paths) if isinstance(existing_paths, Mapping) else dict.fromkeys(existing_paths, "")
    for name, fix in fixes.items():
        if name not in annotations:
            raise ParameterError(f"check_parameters(existing_paths=...) names {name!r}, "
                                 "which is not a parameter of this notebook")
        value = values[name]
        entries = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, entry in entries:
            if entry is None:
                continue
            path = resolve_path(entry)
            if not path.exists():
                label = repr(name) if key is None else f"{name}[{key!r}]"
                kind = "file" if Path(str(entry)).suffix else "folder"
                raise ParameterError(
                    f"parameter {label} = {entry!r}: {path} does not exist. "
                    + (fix or f"Point it at an existing {kind}") + " (relative paths start at the project "
                    f"root {project_root()}; the quick profile's defaults use the synthetic data)")
    return values


def _unknown_message(unknown: list[str], annotations: Mapping[str, Any], elsewhere: Mapping[str, list]) -> str:
    known = sorted(set(annotations) | set(elsewhere))
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    return (f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(parts)}: no course notebook "
            f"declares {'them' if len(unknown) > 1 else 'it'}. Fix the name in the profile file "
            f"(configs/*.yaml) or the -p option. This notebook's parameters: {', '.join(sorted(annotations))}")
