"""Tests of finefcace/errors.py: one family of bad-input errors, one way each entry point shows them."""

from __future__ import annotations

import io

import pytest

from finefcace import errors
from finefcace.course.parameters import ParameterError
from finefcace.errors import DataError, UserError, check_output, report
from finefcace.training.checkpoint import CheckpointError
from finefcace.training.config import ConfigError
from finefcace.training.loaders import TrainingDataError


def test_every_bad_input_error_is_a_user_error_and_a_value_error():
    for kind in (ConfigError, TrainingDataError, ParameterError, CheckpointError, DataError, errors.ModelOutputError):
        assert issubclass(kind, UserError) and issubclass(kind, ValueError)


def test_report_prints_one_line_and_returns_2():
    stream = io.StringIO()
    try:
        raise ConfigError("config key 'epochs' must be >= 1, got 0")
    except ConfigError as error:
        assert report(error, stream=stream) == 2
        assert stream.getvalue() == "error: config key 'epochs' must be >= 1, got 0\n"
        loud = io.StringIO()
        report(error, debug=True, stream=loud)
    assert loud.getvalue().startswith("Traceback (most recent call last)")
    assert loud.getvalue().endswith("error: config key 'epochs' must be >= 1, got 0\n")
    stream = io.StringIO()
    report(PermissionError(13, "Permission denied", "/root/x"), stream=stream)
    assert stream.getvalue() == "error: Permission denied: /root/x\n"


def test_check_output_refuses_inputs_always_and_existing_files_without_overwrite(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("x\n")
    with pytest.raises(UserError, match=r"is the table read: writing there would destroy it.*does not change this"):
        check_output(tmp_path / "." / "t.csv", inputs={table: "the table read"}, overwrite=True)
    with pytest.raises(UserError, match="exists; choose another file, or pass --overwrite"):
        check_output(table)
    assert check_output(table, overwrite=True) == table
    assert check_output(tmp_path / "new.csv") == tmp_path / "new.csv"
    with pytest.raises(UserError, match="is a folder; give the name of the file"):
        check_output(tmp_path, overwrite=True)
    with pytest.raises(UserError, match="already holds files; choose a new or empty folder"):
        check_output(tmp_path, folder=True)
    with pytest.raises(UserError, match="is a file; give a folder"):
        check_output(table, folder=True, overwrite=True)
    assert check_output(tmp_path, folder=True, overwrite=True) == tmp_path
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty", folder=True) == tmp_path / "empty"
    assert table.read_text() == "x\n"  # never touched


def test_a_notebook_cell_shows_a_user_error_as_one_line(capsys, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.set_custom_exc((UserError,), errors.notebook_handler)
    try:
        monkeypatch.delenv(errors.DEBUG_VARIABLE, raising=False)
        result = shell.run_cell("from finefcace.errors import UserError\nraise UserError('parameter x is wrong')")
        shown = capsys.readouterr().out
        assert not result.success and isinstance(result.error_in_exec, UserError)  # the cell fails (papermill stops)
        assert shown.strip() == "error: parameter x is wrong"
        monkeypatch.setenv(errors.DEBUG_VARIABLE, "1")
        shell.run_cell("raise UserError('parameter x is wrong')")
        assert "Traceback" in capsys.readouterr().out
        shell.run_cell("1 / 0")  # anything else keeps its traceback
        assert "ZeroDivisionError" in capsys.readouterr().out
    finally:
        shell.set_custom_exc((), None)


def test_an_output_folder_that_is_a_file_or_cannot_be_written_is_refused(tmp_path):
    from finefcace.errors import check_output_folder

    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"--results .*afile is a file; give a folder"):
        check_output_folder(tmp_path / "afile", option="--results")
    with pytest.raises(UserError, match=r"cannot be made: .*afile is a file"):
        check_output_folder(tmp_path / "afile" / "below")
    with pytest.raises(UserError, match="cannot be written"):
        check_output_folder("/proc/finefcace-results")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.json").write_text("{}")
    assert check_output_folder(tmp_path / "full" / "new") == tmp_path / "full" / "new"  # not created here
    assert check_output_folder(tmp_path / "full") == tmp_path / "full"  # a results folder gathers files
    assert not (tmp_path / "full" / "new").exists()


def test_a_script_run_under_the_policy_shows_one_line_and_exits_2(capsys, monkeypatch):
    from finefcace.errors import run_script

    def main(argv):
        raise UserError("--epochs must be at least 1, got 0")

    assert run_script(main, ["--epochs", "0"]) == 2
    assert capsys.readouterr().err == "error: --epochs must be at least 1, got 0\n"
    assert run_script(main, ["--epochs", "0", "--debug"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    assert run_script(lambda argv: None, []) == 0 and run_script(lambda argv: 3, []) == 3
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_script(lambda argv: 1 / 0, [])
