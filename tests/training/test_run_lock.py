"""One training at a time per run directory (finefcace.training.run_lock): a second process on
the same ``run_dir`` is refused at once naming the holder's pid; a lock a dead process left
does not block; a refused training leaves no folder behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from finefcace.training.run_lock import LOCK_FILE, RunDirectoryBusy, RunDirectoryLock

PROJECT = Path(__file__).resolve().parents[2]
#: The tiny run both processes ask for: synthetic 24/8/8 faces at 64 px, ResNet-18, two batches an epoch.
TINY = {"method": "finefcace", "backbone": "resnet18", "input_size": 64, "batch_size": 8, "epochs": 2,
        "max_batches": 2, "device": "cpu", "workers": 0, "progress": False, "seed": 0, "root": "data",
        "run_dir": "run", "overrides": {"descriptor_dim": 16},
        "synthetic": {"n_train": 24, "n_val": 8, "n_test": 8, "size": 64, "seed": 0}}


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_a_second_lock_on_the_same_folder_is_refused_naming_the_holder(tmp_path):
    with RunDirectoryLock(tmp_path / "run"):
        assert (tmp_path / "run" / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunDirectoryBusy, match=rf"in use: process {os.getpid()} is training there"):
            RunDirectoryLock(tmp_path / "run").acquire()
        assert (tmp_path / "run").is_dir()  # the refused one removes nothing of the holder's
    assert not (tmp_path / "run" / LOCK_FILE).exists()  # released: the lock file goes
    RunDirectoryLock(tmp_path / "run").acquire().release()  # and the folder is free again


def test_a_lock_file_left_by_a_killed_process_does_not_block(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom finefcace.training.run_lock import RunDirectoryLock\n"
        "RunDirectoryLock(sys.argv[1]).acquire()\ntime.sleep(120)\n"), str(tmp_path / "run")], env=environment())
    lock_file = tmp_path / "run" / LOCK_FILE
    deadline = time.monotonic() + 60
    while not (lock_file.exists() and lock_file.read_text().strip() == str(holder.pid)):
        assert holder.poll() is None and time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.05)
    with pytest.raises(RunDirectoryBusy, match=rf"process {holder.pid}"):
        RunDirectoryLock(tmp_path / "run").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_file.read_text().strip() == str(holder.pid)  # the dead process's file is still there
    lock = RunDirectoryLock(tmp_path / "run").acquire()  # but its lock died with it
    assert lock_file.read_text() == f"{os.getpid()}\n"
    lock.release()


def test_a_training_refused_before_it_wrote_anything_leaves_no_folder(tmp_path):
    with pytest.raises(ValueError):
        with RunDirectoryLock(tmp_path / "runs" / "a" / "run"):
            raise ValueError("a bad table, found during setup")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError):
        with RunDirectoryLock(tmp_path / "kept" / "run"):
            (tmp_path / "kept" / "run" / "config.json").write_text("{}")
            raise ValueError("interrupted after writing")
    assert (tmp_path / "kept" / "run" / "config.json").is_file()  # what a run wrote is never removed


def test_a_second_training_on_a_run_dir_in_use_is_refused_naming_the_first(tmp_path):
    """The first training holds the folder (its lock file appears with its pid); a second one
    started on the same folder while the first trains is refused at once, naming it; the first
    trains on undisturbed: still running after the refusal, it is then stopped as a user stops a
    run (SIGTERM), saves its checkpoint at a batch boundary, says how to resume and releases the
    folder. (Started while the first one provably trains: two processes merely launched together
    can finish one after the other on a loaded machine, and then the second correctly loads the
    finished run. Stopped rather than waited for: its 30 epochs are only there to keep it
    training while the second starts; resuming is tests/training/test_checkpoint.py's.)"""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**TINY, "epochs": 30, "patience": None}))
    command = [sys.executable, "-m", "finefcace", "train", "-c", "c.yaml", "-q"]
    first = subprocess.Popen(command, cwd=tmp_path, env=environment(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "run" / LOCK_FILE
    deadline = time.monotonic() + 300
    while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first training never took the folder's lock"
        time.sleep(0.05)
    second = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=600)
    assert first.poll() is None, "the first training ended before the second was refused: the test proves nothing"
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert re.fullmatch(rf"error: run directory 'run' is in use: process {first.pid} is training there .*\n",
                        second.stderr), second.stderr
    assert "Traceback" not in second.stderr
    first.send_signal(signal.SIGTERM)
    _, errors = first.communicate(timeout=600)
    assert first.returncode != 0 and "SIGTERM received: saved run/last.pt" in errors, errors
    assert "run the same command again to resume" in errors
    assert (tmp_path / "run" / "last.pt").is_file()
    assert not lock.exists()
