"""finefcace.outputs: every output file written whole or not at all; what an interrupted write
leaves is removed, with a warning, the next time the same output is written.

The commands are killed while they write (``SIGKILL`` and ``SIGINT``) in
``tests/test_interrupted_writes.py``; here the helpers themselves."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from finefcace import outputs


def test_an_error_while_writing_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with outputs.atomic_output(target) as temporary:
            temporary.write_text("half a tab")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_the_writers_produce_whole_files_with_the_usual_mode(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    outputs.write_csv(frame, tmp_path / "deep" / "t.csv")
    outputs.write_json(tmp_path / "r.json", {"k": [1]})
    outputs.copy_file(tmp_path / "r.json", tmp_path / "copy.json")
    assert pd.read_csv(tmp_path / "deep" / "t.csv").equals(frame)
    assert json.loads((tmp_path / "copy.json").read_text()) == {"k": [1]}
    (tmp_path / "plain").write_text("")
    plain = (tmp_path / "plain").stat().st_mode & 0o777
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == plain  # as open() makes it, not mkstemp's 0600


def test_a_stale_temporary_is_removed_with_a_warning_naming_it(tmp_path):
    stale = tmp_path / ".report.md.k2j4x9.tmp"
    stale.write_text("half")
    other = tmp_path / ".other.md.abc.tmp"  # another output's: not this write's business
    other.write_text("x")
    with pytest.warns(UserWarning, match=r"removed 1 unfinished temporary file.*\.report\.md\.k2j4x9\.tmp"):
        outputs.write_text(tmp_path / "report.md", "whole\n")
    assert not stale.exists() and other.exists()
    assert (tmp_path / "report.md").read_text() == "whole\n"


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "subset"
    with pytest.raises(KeyboardInterrupt):
        with outputs.atomic_folder(target) as partial:
            (partial / "a.jpg").write_bytes(b"1")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    target.mkdir()  # an empty folder given as --out is filled too
    with outputs.atomic_folder(target) as partial:
        (partial / "UTKFace").mkdir()
        (partial / "UTKFace" / "a.jpg").write_bytes(b"1")
    assert [p.name for p in tmp_path.iterdir()] == ["subset"]
    assert (target / "UTKFace" / "a.jpg").read_bytes() == b"1"


def test_a_stale_temporary_folder_is_removed_too(tmp_path):
    stale = tmp_path / ".subset.x1.tmp"
    (stale / "UTKFace").mkdir(parents=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with outputs.atomic_folder(tmp_path / "subset"):
            pass
    assert not stale.exists() and any("unfinished" in str(w.message) for w in caught)


def test_a_temporary_of_a_process_still_writing_is_left_alone(tmp_path):
    import os
    import subprocess
    import sys

    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f".table.csv.{living.pid}.abc123.tmp"  # that process's write under way
        busy.write_text("half")
        dead = tmp_path / f".table.csv.{2**22 + 7}.def456.tmp"  # above the default pid_max: no such process
        dead.write_text("half")
        with pytest.warns(UserWarning, match="def456"):
            outputs.write_text(tmp_path / "table.csv", "a\n")
        assert busy.exists() and not dead.exists()
        own = list(tmp_path.glob(f".table.csv.{os.getpid()}.*"))
        assert own == []  # this process's own temporary became table.csv
    finally:
        living.kill()
        living.wait()
