"""Render the whole course: execute every notebook with papermill, then build the Jupyter Book.

    python scripts/course.py --profile configs/quick.yaml        # what `make book` runs
    python scripts/course.py --profile configs/paper_fairface.yaml --only 04_training
    python scripts/course.py --profile configs/utkface_cpu.yaml --set root=/path/to/utkface

Steps
1. Read the notebook order from ``_toc.yml`` (the book's table of contents is the one list).
2. Execute each ``notebooks/NN_*.ipynb`` with papermill, parameters from the profile file,
   working directory ``notebooks/`` (as nbval uses), into ``book/notebooks/`` — the copies
   the book renders. Stored notebooks stay clean. One profile serves the whole chain: each
   notebook receives only the keys its ``parameters`` cell declares, and a profile key that
   no notebook of the course declares (a typo) stops the run before anything executes,
   naming the key and the close names.
3. Build the book with ``jupyter-book build -W -n --keep-going`` into a staging folder and only
   then move it to ``_build/html``.

A failure anywhere exits non-zero, names the notebook and the cell, and leaves **no**
``_build/html`` behind: a half-built book never looks complete.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import posixpath
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

EXECUTED_DIR = Path("book") / "notebooks"
STATUS_TABLE = EXECUTED_DIR / "execution_status.md"
RUN_LEDGER = "runs_of_this_build.jsonl"
REPRODUCTION_LEDGER = "studies_checked_by_this_build.jsonl"
#: The name of the profile a build without ``--profile`` uses: the notebooks' own defaults,
#: which ``configs/quick.yaml`` writes out (tests/course/test_parameters.py checks they agree).
DEFAULT_PROFILE = "quick"


class CourseError(RuntimeError):
    """A notebook or the book build failed; the message says which and where."""


def notebook_order(root: Path) -> list[str]:
    """Notebook stems in the order ``_toc.yml`` lists them (``book/notebooks/<stem>``)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    stems: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                value = node.get(key)
                if isinstance(value, str) and value.startswith(EXECUTED_DIR.as_posix() + "/"):
                    stems.append(Path(value).name)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return stems


def load_profile(path: Path | None) -> dict:
    """The papermill parameters of a profile file (empty profile = the notebooks' defaults)."""
    if path is None:
        return {}
    if not path.exists():
        raise CourseError(f"profile file not found: {path} (see configs/ for the profiles)")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise CourseError(f"profile {path} must be a mapping of parameter: value")
    return params


def apply_settings(params: dict, settings: list[str]) -> dict:
    """The profile with ``KEY=VALUE`` settings applied (``--set``; the value read as YAML:
    ``root=data/x``, ``epochs=2``, ``cross_datasets={fairface: data/ff}``)."""
    params = dict(params)
    for setting in settings:
        key, separator, value = setting.partition("=")
        if not separator or not key.strip():
            raise CourseError(f"--set expects KEY=VALUE, got {setting!r} (e.g. --set root=/path/to/utkface)")
        try:
            params[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as error:
            raise CourseError(f"--set {key}: cannot read {value!r} as YAML ({error})") from None
    return params


def parameters_per_notebook(root: Path, stems: list[str], params: dict) -> dict[str, dict]:
    """The profile split by notebook: each notebook gets the keys its parameters cell declares.

    A key that no notebook in ``stems`` declares raises :class:`CourseError` naming it and
    the close names (checked before any notebook runs).
    """
    import difflib

    from finefcace.course.parameters import declared_parameters

    declared: dict[str, set[str]] = {}
    for stem in stems:
        path = root / "notebooks" / f"{stem}.ipynb"
        try:
            declared[stem] = set(declared_parameters(path))
        except Exception:  # missing or unreadable: execute_notebooks names it when it gets there
            declared[stem] = set()
    known = set().union(*declared.values()) if declared else set()
    unknown = sorted(set(params) - known)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            hints.append(f"{key!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
        raise CourseError(f"profile key{'s' if len(unknown) > 1 else ''} {', '.join(hints)} "
                          f"{'are' if len(unknown) > 1 else 'is'} declared by no notebook of the course; "
                          f"fix the profile. Known keys: {', '.join(sorted(known))}")
    return {stem: {k: v for k, v in params.items() if k in declared[stem]} for stem in stems}


def _failed_cell(source_path: Path, executed_path: Path) -> str:
    """Describe the first cell with an error output, numbered as in the stored notebook."""
    import nbformat

    try:
        executed = nbformat.read(executed_path, as_version=4)
        stored_ids = [c.get("id") for c in nbformat.read(source_path, as_version=4).cells]
    except Exception:  # the notebook could not even be written: papermill said why
        return "(no cell ran)"
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                lines = cell.source.strip().splitlines()
                if cell.get("id") in stored_ids:
                    where = f"cell {stored_ids.index(cell.get('id')) + 1} of {len(stored_ids)}"
                else:
                    where = "the cell papermill injected with the profile's parameters"
                return (f"{where} (In [{cell.get('execution_count')}]), starting "
                        f"`{lines[0][:80] if lines else ''}`: {output.get('ename')}: {output.get('evalue')}")
    return "(no cell reported an error)"


def execute_notebooks(root: Path, stems: list[str], params: dict, *, profile_name: str) -> list[dict]:
    """Run each notebook with papermill; raise CourseError naming the notebook and cell on failure."""
    import papermill as pm

    out_dir = root / EXECUTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    failed_dir = root / "_build" / "failed"
    timings = []
    # Each run a notebook trains or loads is noted here (finefcace.course.session.trained_run):
    # the status page says which runs this build trained and which it loaded.
    from finefcace.course.reproduction import LEDGER_VARIABLE as REPRODUCTION_LEDGER_VARIABLE
    from finefcace.course.session import RUN_LEDGER_VARIABLE

    ledger = out_dir / RUN_LEDGER
    ledger.unlink(missing_ok=True)
    os.environ[RUN_LEDGER_VARIABLE] = str(ledger.resolve())
    # ... and each committed study a chapter checks against its own runs (finefcace.course.reproduction).
    checks_ledger = out_dir / REPRODUCTION_LEDGER
    checks_ledger.unlink(missing_ok=True)
    os.environ[REPRODUCTION_LEDGER_VARIABLE] = str(checks_ledger.resolve())
    runs: list[dict] = []
    per_notebook = parameters_per_notebook(root, notebook_order(root), params)
    for stem in stems:
        source = root / "notebooks" / f"{stem}.ipynb"
        target = out_dir / f"{stem}.ipynb"
        target.unlink(missing_ok=True)  # a stale copy must never be rendered as if it had run
        if not source.exists():
            raise CourseError(f"notebook listed in _toc.yml is missing: {source.relative_to(root)}")
        print(f"[course] executing {source.relative_to(root)} ...", flush=True)
        started = time.perf_counter()
        try:
            pm.execute_notebook(
                str(source), str(target), parameters=per_notebook.get(stem, {}), cwd=str(root / "notebooks"),
                kernel_name="python3", progress_bar=False, log_output=False,
            )
        except Exception as error:  # PapermillExecutionError, or a notebook that cannot be read
            failed_dir.mkdir(parents=True, exist_ok=True)
            kept = failed_dir / f"{stem}.ipynb"
            if target.exists():
                shutil.move(str(target), kept)
                where = _failed_cell(source, kept)
            else:
                where = f"(could not run: {type(error).__name__}: {error})"
            raise CourseError(
                f"notebook {source.relative_to(root)} failed at {where}\n"
                f"  the executed copy with the traceback is kept at {kept.relative_to(root)}"
                if kept.exists() else
                f"notebook {source.relative_to(root)} failed: {where}") from None
        seconds = time.perf_counter() - started
        _collapse_injected_parameters(target)
        timings.append({"notebook": stem, "seconds": round(seconds, 1)})
        print(f"[course] {stem}: {seconds:.1f} s", flush=True)
        noted = [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.is_file() else []
        runs += [{"notebook": stem, **entry} for entry in noted[len(runs):]]
    checks = [json.loads(line) for line in checks_ledger.read_text().splitlines()] if checks_ledger.is_file() else []
    _write_status(root, timings, profile_name, runs, checks)
    return timings


def _collapse_injected_parameters(executed: Path) -> None:
    """Collapse the cell papermill adds with a profile's values, like the parameters cell it
    overrides (Jupyter Book's ``hide-input`` tag): the book opens on the chapter, not on a list
    of settings."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    injected = [c for c in notebook.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    for cell in injected:
        if "hide-input" not in cell.metadata["tags"]:
            cell.metadata["tags"].append("hide-input")
    if injected:
        nbformat.write(notebook, executed)


def runs_in_words(runs: list[dict]) -> tuple[list[str], str]:
    """What the build did with each run the notebooks asked for, in the order they asked: trained
    here; loaded after an earlier notebook of this build trained it; or loaded from a build before
    this one (train-or-load: a finished run of the same configuration in its folder). Returns one
    label per run and the sentence that counts them."""
    trained_here: set[str] = set()
    labels = []
    for run in runs:
        if run["action"] == "trained":
            trained_here.add(str(run["run"]))
            labels.append("trained")
        elif str(run["run"]) in trained_here:
            labels.append("loaded (trained above)")
        else:
            labels.append("loaded from an earlier build")
    counts = {label: labels.count(label) for label in ("trained", "loaded (trained above)",
                                                       "loaded from an earlier build")}
    sentence = (f"Training runs the notebooks asked for: {len(runs)}, of which {counts['trained']} trained in this "
                f"build, {counts['loaded (trained above)']} loaded after an earlier notebook of this build had "
                f"trained them, and {counts['loaded from an earlier build']} loaded from a build before this one "
                "(train-or-load: a run is loaded when its folder holds a finished run of the same configuration)")
    return labels, sentence


def reproduction_lines(checks: list[dict]) -> list[str]:
    """The status page's table of the committed studies this build checked against its own runs
    (:mod:`finefcace.course.reproduction`): which runs, the verdict, the largest difference."""
    if not checks:
        return []
    verdicts = {"identical": "reproduced: identical numbers", "not reproduced": "**not reproduced** (regenerate it)",
                "other hardware": "made with another device or thread count: not comparable run by run"}

    from finefcace.course.reproduction import short_commit

    def made_by(version: str) -> str:
        commit = short_commit(version)
        return f"`{commit}`" if commit else "not recorded"

    return [
        "Committed studies this build checked: the chapters retrain runs that are also a study's runs of the same "
        "arm and seed, and compare the test metrics.",
        "",
        "| study | runs compared | verdict | largest difference | study made by |",
        "|---|---|---|---|---|",
        *[f"| `{c['study']}` | {', '.join(c['runs'])} | {verdicts.get(c['verdict'], c['verdict'])} "
          f"| {c['largest_difference']:.3g} | {made_by(c['code_version'])} |" for c in checks],
        "",
    ]


def _write_status(root: Path, timings: list[dict], profile_name: str, runs: list[dict] | None = None,
                  checks: list[dict] | None = None) -> None:
    """The execution-status tables the book's status page includes (QuantEcon style): time per
    notebook, every training run the notebooks asked for (trained in this build or loaded), and the
    committed studies the build checked against its runs."""
    import torch

    from finefcace import outputs

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    runs = runs or []
    lines = [
        f"Profile `{profile_name}`, executed on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"device: {device}, Python {platform.python_version()}, torch {torch.__version__}.",
        "",
        "| notebook | execution time (s) |",
        "|---|---|",
        *[f"| {t['notebook']} | {t['seconds']} |" for t in timings],
        f"| **total** | {sum(t['seconds'] for t in timings):.1f} |",
        "",
    ]
    if runs:
        folders = {posixpath.dirname(str(r["run"])) for r in runs}
        parent = folders.pop() if len(folders) == 1 else ""  # one runs folder: named once, not on every row
        labelled, sentence = runs_in_words(runs)
        lines += [
            sentence + (f"; every run's folder is in `{parent}/`." if parent else "."),
            "",
            "| notebook | run | this build | time (s) |",
            "|---|---|---|---|",
            *[f"| {r['notebook']} | `{posixpath.basename(str(r['run'])) if parent else r['run']}` | {label} "
              f"| {r['seconds']} |" for r, label in zip(runs, labelled)],
            "",
        ]
    lines += reproduction_lines(checks or [])
    outputs.write_text(root / STATUS_TABLE, "\n".join(lines))
    outputs.write_text(root / EXECUTED_DIR / "execution_status.json", json.dumps(
        {"profile": profile_name, "device": device, "timings": timings, "runs": runs, "checks": checks or []},
        indent=2))


def build_book(root: Path) -> Path:
    """jupyter-book build -W -n --keep-going into staging, then move to _build/html."""
    (root / "_build").mkdir(parents=True, exist_ok=True)
    # A staging folder of this run's own: two builds at once must not share (and delete) one.
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=root / "_build"))
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root),
               "--path-output", str(staging), "-W", "-n", "--keep-going"]
    print("[course] " + " ".join(command), flush=True)
    result = subprocess.run(command, cwd=root)
    built = staging / "_build" / "html"
    if result.returncode != 0 or not (built / "index.html").exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise CourseError(f"jupyter-book build failed (exit {result.returncode}); "
                          "the warnings above name the page and line")
    final = root / "_build" / "html"
    shutil.rmtree(final, ignore_errors=True)
    shutil.move(str(built), final)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=None,
                        help="papermill parameter file (default: the notebooks' own quick defaults)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="project root (holds _config.yml, _toc.yml, notebooks/)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="execute only these notebook stems (no book build)")
    parser.add_argument("--skip-build", action="store_true", help="execute notebooks only")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="change one profile key (value read as YAML), e.g. --set root=/path/to/utkface")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    started = time.perf_counter()
    html = root / "_build" / "html"
    try:
        params = apply_settings(load_profile(args.profile), args.settings)
        stems = notebook_order(root)
        if args.only is not None:
            unknown = sorted(set(args.only) - set(stems))
            if unknown:
                raise CourseError(f"--only names unknown notebooks {unknown}; known: {stems}")
            stems = [s for s in stems if s in args.only]
        else:
            shutil.rmtree(html, ignore_errors=True)  # no stale book survives a failed run
        profile_name = args.profile.stem if args.profile else DEFAULT_PROFILE
        if args.settings:
            profile_name += " with " + ", ".join(args.settings)
        execute_notebooks(root, stems, params, profile_name=profile_name)
        if args.only is None and not args.skip_build:
            html = build_book(root)
    except CourseError as error:
        print(f"[course] FAILED: {error}", file=sys.stderr, flush=True)
        if args.only is None:
            shutil.rmtree(root / "_build" / "html", ignore_errors=True)
        return 1
    minutes = (time.perf_counter() - started) / 60
    if args.only is None and not args.skip_build:
        print(f"[course] done in {minutes:.1f} min. Open {html / 'index.html'}", flush=True)
    else:
        print(f"[course] notebooks executed in {minutes:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
