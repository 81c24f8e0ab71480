"""Every bad input and fault of ``tests/bad_inputs.py`` through its entry point (the two
commands, the experiment and helper scripts, a notebook cell): the exit status
and message it must give, no raw traceback, nothing overwritten, nothing written before the
input is checked; and the advice after an unreadable checkpoint, followed.

``python scripts/bad_inputs_table.py`` runs the same cases against any checkout and prints
the before/after table.
"""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from tests.bad_inputs import CASES, build_shared, copy_run, run_case, run_command, truncate, write_config
from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)

pytestmark = pytest.mark.slow  # the cases start from a trained run, and a few train one batch


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_shared(tmp_path_factory.mktemp("shared"))
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input(case, shared, tmp_path):
    if case.needs_cpu_only and torch.cuda.is_available():
        pytest.skip("the case is a machine without a CUDA GPU")
    outcome = run_case(case, tmp_path / case.id, shared)
    assert not outcome.problems, (f"{case.id}: {outcome.problems}\nfirst line: {outcome.first_line(case.message)}\n"
                                  f"stdout:\n{outcome.stdout[-3000:]}\nstderr:\n{outcome.stderr[-3000:]}")


def test_the_cases_cover_every_entry_point_and_are_enough():
    entries = {case.entry for case in CASES}
    assert entries == {"finefcace", "data_prep", "notebook", "script"}
    assert len(CASES) >= 100
    scripts = {case.command[0] for case in CASES if case.entry == "script"}
    assert scripts == {"experiments/real_photographs.py", "experiments/resolution.py", "experiments/controls.py",
                       "experiments/seeds.py", "experiments/mitigation_methods.py", "scripts/photo_subset.py",
                       "scripts/gpu_check.py"}


def _train(folder, *extra):
    return run_command("finefcace", ("train", "-c", "c.yaml", "-q", *extra), folder)


def test_the_advice_after_an_unreadable_best_checkpoint_works_when_followed(shared, tmp_path):
    copy_run(tmp_path, shared)
    write_config(tmp_path)
    truncate("best.pt")(tmp_path)
    refused = run_command("finefcace", ("evaluate", "--run-dir", "run", "--out", "p.csv", "-q"), tmp_path)
    assert refused.status == 2 and "best.pt" in refused.stderr
    advice = re.findall(r"--set (\S+)", refused.stderr)
    assert advice == ["resume=false"], refused.stderr
    followed = _train(tmp_path, "--set", advice[0])  # the run's train command, as the message says
    assert followed.status == 0, followed.stderr
    again = run_command("finefcace", ("evaluate", "--run-dir", "run", "--out", "p.csv", "-q"), tmp_path)
    assert again.status == 0 and (tmp_path / "p.csv").is_file(), again.stderr


def test_the_advice_after_an_unreadable_last_checkpoint_works_when_followed(shared, tmp_path):
    copy_run(tmp_path, shared)
    write_config(tmp_path)
    truncate("last.pt")(tmp_path)
    (tmp_path / "run" / "summary.json").unlink()  # an unfinished run: train resumes from last.pt
    refused = _train(tmp_path)
    assert refused.status == 2 and "run/last.pt' could not be read" in refused.stderr
    assert "delete it" in refused.stderr
    (tmp_path / "run" / "last.pt").unlink()  # the advice
    followed = _train(tmp_path)
    assert followed.status == 0 and '"finished": true' in followed.stdout, followed.stderr
    # the other advice, on a fresh copy: rerun with --set resume=false
    shutil.rmtree(tmp_path / "run")
    copy_run(tmp_path / "again", shared)
    write_config(tmp_path / "again")
    truncate("last.pt")(tmp_path / "again")
    (tmp_path / "again" / "run" / "summary.json").unlink()
    assert _train(tmp_path / "again", "--set", "resume=false").status == 0


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    write_config(tmp_path, text="epoch: 3\n")
    quiet = run_command("finefcace", ("train", "-c", "c.yaml"), tmp_path)
    loud = run_command("finefcace", ("train", "-c", "c.yaml", "--debug"), tmp_path)
    assert quiet.status == loud.status == 2
    assert "Traceback" not in quiet.stderr and quiet.stderr.startswith("error: unknown config key 'epoch'")
    assert "Traceback (most recent call last)" in loud.stderr and "ConfigError" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == quiet.stderr.strip()
