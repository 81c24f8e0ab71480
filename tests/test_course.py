"""The book command (scripts/course.py) on tiny throw-away projects: it builds, and it fails loudly.

The real course is built in tests/test_book.py; here a minimal copy of the project's book
configuration is enough to check the pipeline papermill -> jupyter-book and its failure modes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A tiny chapter")]
    nb.cells.append(nbformat.v4.new_code_cell("n: int = 2", metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def make_project(tmp_path: Path, notebooks: dict[str, nbformat.NotebookNode | None]) -> Path:
    """A project with the real _config.yml, an intro page and the given notebooks in the TOC."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    # Files _config.yml names (vendored MathJax, the bibliography): without them -W fails.
    shutil.copytree(ROOT / "book" / "_static", tmp_path / "book" / "_static")
    for bibliography in ROOT.glob("book/*.bib"):
        shutil.copy(bibliography, tmp_path / "book" / bibliography.name)
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "book" / "_ext")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nA test book.\n")
    chapters = "".join(f"  - file: book/notebooks/{stem}\n" for stem in notebooks)
    (tmp_path / "_toc.yml").write_text(f"format: jb-book\nroot: book/intro\nchapters:\n{chapters}")
    for stem, nb in notebooks.items():
        if nb is not None:
            nbformat.write(nb, tmp_path / "notebooks" / f"{stem}.ipynb")
    return tmp_path


def run_course(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "course.py"), "--root", str(project), *args],
                          capture_output=True, text=True, timeout=300)


def test_course_executes_notebooks_with_parameters_and_builds_the_book(tmp_path):
    project = make_project(tmp_path, {"01_square": _notebook("print('square is', n * n)")})
    (project / "profile.yaml").write_text("n: 7\n")
    result = run_course(project, "--profile", str(project / "profile.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    page = project / "_build" / "html" / "book" / "notebooks" / "01_square.html"
    assert (project / "_build" / "html" / "index.html").exists()
    assert "square is 49" in page.read_text(), "the profile's parameter did not reach the notebook"
    assert (project / "notebooks" / "01_square.ipynb").read_text().count('"outputs": []') >= 1, \
        "the stored notebook must stay clean"
    assert "Open " in result.stdout and "index.html" in result.stdout


def test_a_failing_cell_names_notebook_and_cell_and_leaves_no_book(tmp_path):
    project = make_project(tmp_path, {
        "01_ok": _notebook("print('fine')"),
        "02_broken": _notebook("x = 1", "raise ValueError('deliberately broken cell')"),
    })
    stale = project / "_build" / "html"
    stale.mkdir(parents=True)
    (stale / "index.html").write_text("an old, complete-looking book")
    result = run_course(project)
    assert result.returncode != 0
    assert "notebooks/02_broken.ipynb" in result.stderr
    assert "cell 4 of 4" in result.stderr and "deliberately broken cell" in result.stderr, result.stderr
    assert not (project / "_build" / "html").exists(), "a failed run must not leave a book that looks complete"
    assert (project / "_build" / "failed" / "02_broken.ipynb").exists(), "the traceback copy is kept for debugging"


def test_a_missing_notebook_is_named(tmp_path):
    project = make_project(tmp_path, {"01_ok": _notebook("print('fine')"), "02_missing": None})
    result = run_course(project)
    assert result.returncode != 0
    assert "notebooks/02_missing.ipynb" in result.stderr and "missing" in result.stderr
    assert not (project / "_build" / "html").exists()


def test_an_unreadable_notebook_is_named(tmp_path):
    project = make_project(tmp_path, {"01_garbled": None})
    (project / "notebooks" / "01_garbled.ipynb").write_text("{ this is not json")
    result = run_course(project)
    assert result.returncode != 0
    assert "notebooks/01_garbled.ipynb" in result.stderr
    assert not (project / "_build" / "html").exists()


@pytest.mark.parametrize("bad", ["missing.yaml", "list.yaml"])
def test_a_bad_profile_is_refused_before_anything_runs(tmp_path, bad):
    project = make_project(tmp_path, {"01_ok": _notebook("print('fine')")})
    (project / "list.yaml").write_text("- a\n- b\n")
    result = run_course(project, "--profile", str(project / bad))
    assert result.returncode != 0 and bad in result.stderr
    assert not (project / "book" / "notebooks" / "01_ok.ipynb").exists()


def _notebook_with(parameters: str, *sources: str) -> nbformat.NotebookNode:
    nb = _notebook(*sources)
    nb.cells[1].source = parameters
    return nb


def test_each_notebook_receives_only_the_profile_keys_it_declares(tmp_path):
    """One profile serves the whole chain; a notebook never sees another chapter's keys."""
    project = make_project(tmp_path, {
        "01_n": _notebook("print('n is', n, '| m injected:', 'm' in globals())"),
        "02_m": _notebook_with("m: int = 3", "print('m is', m, '| n injected:', 'n' in globals())"),
    })
    (project / "profile.yaml").write_text("n: 7\nm: 5\n")
    result = run_course(project, "--profile", str(project / "profile.yaml"), "--skip-build")
    assert result.returncode == 0, result.stdout + result.stderr
    first = (project / "book" / "notebooks" / "01_n.ipynb").read_text()
    second = (project / "book" / "notebooks" / "02_m.ipynb").read_text()
    assert "n is 7 | m injected: False" in first
    assert "m is 5 | n injected: False" in second


def test_a_profile_key_no_notebook_declares_stops_the_run_before_anything_runs(tmp_path):
    project = make_project(tmp_path, {"01_ok": _notebook("print('fine')")})
    (project / "profile.yaml").write_text("nn: 7\n")
    result = run_course(project, "--profile", str(project / "profile.yaml"))
    assert result.returncode != 0
    assert "'nn'" in result.stderr and "did you mean 'n'" in result.stderr, result.stderr
    assert not (project / "book" / "notebooks" / "01_ok.ipynb").exists()
    assert not (project / "_build" / "html").exists()


def test_set_changes_profile_keys_from_the_command_line(tmp_path):
    """`--set root=...` points a profile at a download without editing it (CI: ../shared/realfaces)."""
    project = make_project(tmp_path, {"01_n": _notebook_with("n: int = 2\nd: dict = {}", "print('n is', n, 'd is', d)")})
    (project / "profile.yaml").write_text("n: 7\n")
    result = run_course(project, "--profile", str(project / "profile.yaml"), "--skip-build", "--set", "n=9",
                        "--set", "d={a: x/y}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "n is 9 d is {'a': 'x/y'}" in (project / "book" / "notebooks" / "01_n.ipynb").read_text()
    assert "with n=9, d={a: x/y}" in (project / "book" / "notebooks" / "execution_status.md").read_text()
    result = run_course(project, "--profile", str(project / "profile.yaml"), "--set", "n")
    assert result.returncode != 0 and "--set expects KEY=VALUE" in result.stderr


def test_the_status_page_lists_the_runs_trained_and_loaded_and_the_injected_parameters_are_collapsed(tmp_path):
    """Notebooks note each run in the ledger the course names (finefcace.course.session.trained_run
    does); the status table lists them per notebook. A profile's injected cell is collapsed."""
    note = ("import json, os\n"
            "with open(os.environ['FINEFCACE_RUN_LEDGER'], 'a') as ledger:\n"
            "    ledger.write(json.dumps({'run': 'runs/x/gender-finefcace', 'action': 'trained', 'seconds': 3.0}) + '\\n')\n"
            "    ledger.write(json.dumps({'run': 'runs/x/gender-baseline', 'action': 'loaded', 'seconds': 0.1}) + '\\n')")
    project = make_project(tmp_path, {"01_runs": _notebook(note), "02_none": _notebook("print(n)")})
    (project / "profile.yaml").write_text("n: 7\n")
    result = run_course(project, "--profile", str(project / "profile.yaml"), "--skip-build")
    assert result.returncode == 0, result.stdout + result.stderr
    status = (project / "book" / "notebooks" / "execution_status.md").read_text()
    assert "Profile `profile`" in status
    assert "of which 1 trained in this build, 0 loaded after an earlier notebook" in status
    assert "and 1 loaded from a build before this one" in status
    assert "| 01_runs | `gender-finefcace` | trained | 3.0 |" in status
    assert "| 01_runs | `gender-baseline` | loaded from an earlier build | 0.1 |" in status
    assert "every run's folder is in `runs/x/`" in status
    executed = nbformat.read(project / "book" / "notebooks" / "02_none.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "hide-input" in injected[0].metadata["tags"]


def test_the_status_page_tells_runs_trained_in_this_build_from_runs_of_an_earlier_build():
    """A run chapter 3 trains and chapter 4 then loads was trained by this build: the status page
    must not say it came from an earlier one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_script", ROOT / "scripts" / "course.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    runs = [{"run": "runs/quick/gender-finefcace", "action": "trained"},
            {"run": "runs/quick/gender-finefcace", "action": "loaded"},
            {"run": "runs/quick/gender-baseline", "action": "loaded"}]
    labels, sentence = script.runs_in_words(runs)
    assert labels == ["trained", "loaded (trained above)", "loaded from an earlier build"]
    assert ("3, of which 1 trained in this build, 1 loaded after an earlier notebook of this build had trained them, "
            "and 1 loaded from a build before this one") in sentence


def test_the_status_page_lists_the_committed_studies_the_build_checked(tmp_path, monkeypatch):
    """What the chapters record through the ledger reaches the status page's table, one row per study."""
    import importlib.util

    from finefcace.course import reproduction

    spec = importlib.util.spec_from_file_location("course_script", ROOT / "scripts" / "course.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ledger = tmp_path / "checks.jsonl"
    monkeypatch.setenv(reproduction.LEDGER_VARIABLE, str(ledger))
    study = pd.DataFrame([{"arm": "baseline", "seed": 0, "test_set": "test", "group": "all",
                           "metric": "overall_accuracy", "value": 80.0}])
    from finefcace.training.study import StudyResults

    results = StudyResults(name="quick_gender", reports=study, runs=pd.DataFrame(),
                           meta={"arms": [{"name": "baseline"}], "hardware": "CPU, 2 threads",
                                 "code_version": "abcdef0123456789abcdef0123456789abcdef01"})
    same = reproduction.check_live_run({"overall_accuracy": 80.0}, results, "baseline", 0, here_hardware="CPU, 2 threads")
    stale = reproduction.check_live_run({"overall_accuracy": 78.5}, results, "baseline", 0, here_hardware="CPU, 2 threads")
    reproduction.reproduction_in_words([same], study="quick_gender", regenerate="cmd")
    reproduction.reproduction_in_words([same, stale], study="mitigation_methods", regenerate="cmd")
    checks = [json.loads(line) for line in ledger.read_text().splitlines()]
    table = "\n".join(script.reproduction_lines(checks))
    assert "| `quick_gender` | baseline (seed 0) | reproduced: identical numbers | 0 | `abcdef0` |" in table
    assert "| `mitigation_methods` | baseline (seed 0), baseline (seed 0) | **not reproduced** (regenerate it) | 1.5 |" in table
    assert script.reproduction_lines([]) == []
    older = dict(checks[0], code_version="not recorded (made before studies recorded it)", verdict="other hardware")
    assert "| not recorded |" in "\n".join(script.reproduction_lines([older]))
