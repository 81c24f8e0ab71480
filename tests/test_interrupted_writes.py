"""Commands killed while they write an output leave no partial file, and the rerun completes.

A command runs in a subprocess under a hook (this file's ``HOOK``, never part of the project)
that makes one named write slow: it writes half of the content, flushes it to disk, leaves a
marker file and waits. The test then sends ``SIGKILL`` (nothing in the process can react) or
``SIGINT`` (Ctrl-C) and checks what the output folder holds: never the target with half its
content — before issue 27 ``data_prep utkface`` left a CSV prefix ending on a whole row, which
the rerun refused as "exists" and readers took for a smaller table. Then the same command runs
again, unhooked: it completes, and a temporary file the kill left is removed with a warning.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

PROJECT = Path(__file__).resolve().parents[1]

#: Run ``argv[1]`` (a module name or a script path) with the writes whose path holds
#: ``$SLOW_WRITE_NAME`` stalled half-way (the first half flushed, then a marker, then a wait).
HOOK = r'''
import os, pathlib, runpy, sys, time
import pandas

SLOW, MARKER = os.environ["SLOW_WRITE_NAME"], os.environ["SLOW_WRITE_MARKER"]


def stall(path, text):
    with open(path, "w") as stream:
        stream.write(text[: len(text) // 2])
        stream.flush()
        os.fsync(stream.fileno())
    with open(MARKER, "w") as marker:
        marker.write(os.fspath(path))
    time.sleep(120)


to_csv = pandas.DataFrame.to_csv


def slow_to_csv(self, path_or_buf=None, *args, **options):
    if isinstance(path_or_buf, (str, os.PathLike)) and SLOW in os.path.basename(os.fspath(path_or_buf)):
        stall(path_or_buf, to_csv(self, None, *args, **options))
    return to_csv(self, path_or_buf, *args, **options)


write_text = pathlib.Path.write_text


def slow_write_text(self, data, *args, **options):
    if SLOW in self.name:
        stall(self, data)
    return write_text(self, data, *args, **options)


pandas.DataFrame.to_csv = slow_to_csv
pathlib.Path.write_text = slow_write_text
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
'''


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1"}


def ctrl_c_handled_as_in_a_terminal() -> None:
    """In the child, before Python starts: SIGINT back to its default action. A test session
    started in the background by a shell without job control (``cmd &``: CI scripts, nohup)
    inherits SIGINT *ignored*; Python then never raises KeyboardInterrupt and the Ctrl-C the test
    sends would do nothing. A user's terminal delivers it; so does this."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_while_writing(command: list[str], slow: str, folder: Path, sig: signal.Signals) -> str:
    """Run ``command`` (module or script, then its arguments) under the hook in ``folder``,
    wait until the write of ``slow`` is half done, send ``sig``; returns its stderr."""
    marker = folder / "write-started"
    marker.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-c", HOOK, *command], cwd=folder,
                               env={**environment(), "SLOW_WRITE_NAME": slow, "SLOW_WRITE_MARKER": str(marker)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ctrl_c_handled_as_in_a_terminal)
    deadline = time.monotonic() + 180
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"the write of {slow} never started (exit {process.returncode}):\n{out}\n{err}")
        time.sleep(0.05)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0, err
    return err


def rerun(command: list[str], folder: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", *command] if not command[0].endswith(".py") else [sys.executable, *command]
    done = subprocess.run(argv, cwd=folder, env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp"))


# ---------------------------------------------------------------------------- data_prep
def utkface_download(root: Path, n: int = 24) -> None:
    from tests.sources.layouts import write_jpg

    for i in range(n):
        gender, race = i % 2, i % 5
        write_jpg(root / "UTKFace" / f"{20 + i}_{gender}_{race}_2017010{i:08d}.jpg.chip.jpg", (16, 16))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_data_prep_killed_while_writing_its_table_leaves_no_partial_table(tmp_path, sig):
    utkface_download(tmp_path / "utk")
    command = ["data_prep", "utkface", "--root", "utk", "--out", "tables", "--labels-only"]
    kill_while_writing(command, "utkface.csv", tmp_path, sig)
    tables = tmp_path / "tables"
    assert not (tables / "utkface.csv").exists()  # neither a prefix nor anything else under the name
    left = temporaries(tables)
    if sig == signal.SIGINT:
        assert left == []  # Ctrl-C: the temporary file is removed on the way out
    else:
        assert len(left) == 1 and left[0].startswith(".utkface.csv.")  # the kill came mid-write

    done = rerun(command, tmp_path)  # no "exists; pass --overwrite": nothing was left under the name
    assert len(pd.read_csv(tables / "utkface.csv")) == 24
    assert temporaries(tables) == []
    if sig == signal.SIGKILL:
        assert "unfinished temporary file" in done.stderr and left[0] in done.stderr


# ---------------------------------------------------------------------------- an experiment script
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_an_experiment_report_killed_while_written_leaves_no_partial_report(tmp_path, sig):
    from tests.test_resolution_report import BASELINE, study

    results = study({"baseline": BASELINE, "finefcace": {64: [18.0, 19.0], 96: [12.0, 13.0], 128: [6.0, 7.0]}})
    results.to_json(tmp_path / "results" / "resolution.json")
    command = [str(PROJECT / "experiments" / "resolution.py"), "--report-only", "--results", "results"]
    kill_while_writing(command, "resolution.md", tmp_path, sig)
    folder = tmp_path / "results"
    assert not (folder / "resolution.md").exists()
    assert (len(temporaries(folder)) == 1) == (sig == signal.SIGKILL)

    rerun(command, tmp_path)
    text = (folder / "resolution.md").read_text()
    assert text.startswith("<!-- Generated by experiments/resolution.py") and "| Method |" in text
    assert (folder / "resolution.png").stat().st_size > 10_000
    assert temporaries(folder) == []
